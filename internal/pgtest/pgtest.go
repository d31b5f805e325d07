// Package pgtest gives tests the PostgreSQL server the test command starts
// (scripts/pg-test.sh exports MCPAUTH_TEST_POSTGRES_DSN) and a fresh schema
// name on it. It is imported only by test files.
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// DSN returns the test server's DSN. Without one the test fails under the
// test command (CI=true or MCPAUTH_TEST_STRICT=1) and is skipped, saying
// why, elsewhere. run is the command line that runs the test with a server.
func DSN(tb testing.TB, what, run string) string {
	tb.Helper()
	dsn := os.Getenv("MCPAUTH_TEST_POSTGRES_DSN")
	if dsn == "" {
		msg := "MCPAUTH_TEST_POSTGRES_DSN is not set: " + what + " needs a real PostgreSQL server; run with: " + run
		if os.Getenv("CI") == "true" || os.Getenv("MCPAUTH_TEST_STRICT") == "1" {
			tb.Fatal(msg + " (refusing to skip)")
		}
		tb.Skip(msg)
	}
	return dsn
}

// Schema returns a fresh schema name with the given prefix.
func Schema(prefix string) string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return prefix + hex.EncodeToString(rnd[:])
}
