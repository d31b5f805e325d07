package caddymodule

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminAPIBackup: GET /mcp_auth/backup streams a complete bbolt copy;
// other methods and sub-paths are refused.
func TestAdminAPIBackup(t *testing.T) {
	app := newTestApp(t)
	srv := adminServer(t, newAdmin(app))
	st, body := adminDo(t, srv, "GET", "/mcp_auth/backup", "")
	if st != 200 {
		t.Fatalf("GET backup: %d %s", st, body)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := writeChecked(dst, io.Discard, func(w io.Writer) (int64, error) { return io.Copy(w, strings.NewReader(body)) }); err != nil {
		t.Fatalf("the copy does not check: %v", err)
	}
	if st, _ := adminDo(t, srv, "POST", "/mcp_auth/backup", ""); st != 405 {
		t.Fatalf("POST backup: %d", st)
	}
	if st, _ := adminDo(t, srv, "GET", "/mcp_auth/backup/x", ""); st != 404 {
		t.Fatalf("GET backup/x: %d", st)
	}
	if len(auditTypes(t, app.store, "store.backup")) == 0 {
		t.Fatal("no store.backup audit event")
	}

	// A short copy (the stream broke) never replaces the destination.
	if err := os.WriteFile(dst, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := writeChecked(dst, io.Discard, func(w io.Writer) (int64, error) { return io.Copy(w, strings.NewReader(body[:len(body)/2])) })
	if err == nil {
		t.Fatal("a truncated copy was accepted")
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, []byte("previous")) {
		t.Fatalf("destination changed after a failed backup: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".copy.db.partial-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
