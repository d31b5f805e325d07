// Package archtest holds no code: its test checks the import boundaries
// between the module's packages (see imports_test.go).
package archtest
