package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestAdminBeyondLoopback(t *testing.T) {
	for _, c := range []struct {
		listen string
		warn   bool
	}{
		{"127.0.0.1:2019", false},
		{"localhost:2019", false},
		{"[::1]:2019", false},
		{"unix//run/caddy/admin.sock", false},
		{"unix//run/caddy/admin.sock|0660", false},
		{"127.0.0.53:2019", false},
		{"", false}, // Caddy's default, localhost:2019
		{"0.0.0.0:2019", true},
		{":2019", true},
		{"10.0.0.1:2019", true},
		{"[::]:2019", true},
		{"tcp/192.168.1.5:2019", true},
		{"admin.example.com:2019", true},
		{"not an address", true},
	} {
		if got := adminBeyondLoopback(c.listen); got != c.warn {
			t.Errorf("adminBeyondLoopback(%q) = %v, want %v", c.listen, got, c.warn)
		}
	}
}

func TestWarnAdminExposure(t *testing.T) {
	for _, c := range []struct {
		admin adminConfig
		warn  bool
	}{
		{adminConfig{listen: "0.0.0.0:2019"}, true},
		{adminConfig{listen: ":2019"}, true},
		{adminConfig{listen: "0.0.0.0:2019", disabled: true}, false},
		{adminConfig{listen: "localhost:2019"}, false},
		{adminConfig{listen: "unix//run/caddy.sock"}, false},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		warnAdminExposure(zap.New(core), c.admin)
		got := logs.FilterMessageSnippet("admin endpoint listens beyond loopback").Len()
		if (got == 1) != c.warn || got > 1 {
			t.Errorf("%+v: %d warnings, want warn=%v", c.admin, got, c.warn)
		}
		if c.warn && logs.All()[0].ContextMap()["admin_listen"] != c.admin.listen {
			t.Errorf("%+v: warning does not name the address: %v", c.admin, logs.All()[0].ContextMap())
		}
	}
}

func randomKEKString(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// validateConfig provisions a whole Caddy config (without starting it)
// with caddy.Validate, the default log going to a file, and returns the
// error and the log.
func validateConfig(t *testing.T, admin map[string]any, app map[string]any) (string, error) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	cfgJSON, err := json.Marshal(map[string]any{
		"admin": admin,
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"writer": map[string]any{"output": "file", "filename": logFile},
			"level":  "INFO",
		}}},
		"apps": map[string]any{"mcp_auth": app},
	})
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	verr := caddy.Validate(&cfg)
	// Caddy's default logger keeps writing to logFile after Validate, and
	// its file writer recreates the directory after t.TempDir removed it.
	// Validating an empty config points the default logger back at stderr;
	// this cleanup runs before the TempDir's (cleanups run last first).
	t.Cleanup(func() { _ = caddy.Validate(&caddy.Config{}) })
	log, _ := os.ReadFile(logFile)
	return string(log), verr
}

func testAppJSON(t *testing.T, dir string, extra map[string]any) map[string]any {
	app := map[string]any{
		"issuer":  "https://auth.example.com",
		"storage": map[string]any{"backend": "bbolt", "path": filepath.Join(dir, "mcpauth.db")},
	}
	for k, v := range extra {
		app[k] = v
	}
	return app
}

// The admin address is read from the config being provisioned, and the
// warning reaches Caddy's log.
func TestProvisionWarnsOfExposedAdmin(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		admin map[string]any
		warn  bool
	}{
		{map[string]any{"listen": "0.0.0.0:2019"}, true},
		{map[string]any{"listen": "localhost:2019"}, false},
		{map[string]any{"listen": "0.0.0.0:2019", "disabled": true}, false},
		{nil, false},
	} {
		log, err := validateConfig(t, c.admin, testAppJSON(t, dir, nil))
		if err != nil {
			t.Fatalf("%v: %v", c.admin, err)
		}
		if got := strings.Contains(log, "admin endpoint listens beyond loopback"); got != c.warn {
			t.Errorf("admin %v: warned=%v, want %v; log:\n%s", c.admin, got, c.warn, log)
		}
	}
}

// The key-encryption key travels from the JSON config (an {env.*}
// placeholder, a file) to the store, and a wrong one stops the config
// with a clear error instead of replacing the keys.
func TestProvisionKeyEncryptionKey(t *testing.T) {
	dir := t.TempDir()
	kekA, kekB := randomKEKString(t), randomKEKString(t)
	t.Setenv("MCPAUTH_TEST_KEK", kekA)
	log, err := validateConfig(t, nil, testAppJSON(t, dir, map[string]any{"key_encryption_key": "{env.MCPAUTH_TEST_KEK}"}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log, kekA) {
		t.Fatal("the KEK is in the log")
	}

	kekFile := filepath.Join(dir, "kek")
	if err := os.WriteFile(kekFile, []byte(kekA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := validateConfig(t, nil, testAppJSON(t, dir, map[string]any{"key_encryption_key_file": kekFile})); err != nil {
		t.Fatalf("same KEK from a file: %v", err)
	}

	_, err = validateConfig(t, nil, testAppJSON(t, dir, map[string]any{"key_encryption_key": kekB}))
	if err == nil || !strings.Contains(err.Error(), "cannot decrypt signing keys: wrong key_encryption_key?") {
		t.Fatalf("wrong KEK: %v", err)
	}
	if strings.Contains(err.Error(), kekB) || strings.Contains(err.Error(), kekA) {
		t.Fatal("the error carries a KEK")
	}
	if _, err := validateConfig(t, nil, testAppJSON(t, dir, nil)); err == nil || !strings.Contains(err.Error(), "no key_encryption_key is configured") {
		t.Fatalf("no KEK on an encrypted store: %v", err)
	}

	// Rotation: B with A as previous re-encrypts; then B alone works.
	if _, err := validateConfig(t, nil, testAppJSON(t, dir, map[string]any{"key_encryption_key": kekB, "key_encryption_key_previous_file": kekFile})); err != nil {
		t.Fatalf("rotation: %v", err)
	}
	if _, err := validateConfig(t, nil, testAppJSON(t, dir, map[string]any{"key_encryption_key": kekB})); err != nil {
		t.Fatalf("new KEK alone after rotation: %v", err)
	}
}

func TestProvisionKEKRefusals(t *testing.T) {
	dir := t.TempDir()
	kek := randomKEKString(t)
	t.Setenv("MCPAUTH_TEST_KEK_UNSET", "")
	for _, c := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"unset variable", map[string]any{"key_encryption_key": "{env.MCPAUTH_TEST_KEK_UNSET}"}, "is the environment variable set?"},
		{"short", map[string]any{"key_encryption_key": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))}, "at least 32"},
		{"passphrase", map[string]any{"key_encryption_key": "my secret passphrase"}, "not base64"},
		{"value and file", map[string]any{"key_encryption_key": kek, "key_encryption_key_file": "/x"}, "exclusive"},
		{"missing file", map[string]any{"key_encryption_key_file": filepath.Join(dir, "none")}, "key_encryption_key_file"},
		{"previous alone", map[string]any{"key_encryption_key_previous": kek}, "needs key_encryption_key"},
		{"weak previous", map[string]any{"key_encryption_key": kek, "key_encryption_key_previous": strings.Repeat("A", 44)}, "key_encryption_key_previous"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := validateConfig(t, nil, testAppJSON(t, dir, c.extra))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), kek) {
				t.Fatal("the error carries the KEK")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "mcpauth.db")); !os.IsNotExist(err) {
		t.Fatalf("a refused config opened the store: %v", err)
	}
}
