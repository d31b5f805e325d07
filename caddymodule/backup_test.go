package caddymodule

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/internal/opscli"
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
	if err := opscli.WriteChecked(dst, io.Discard, func(w io.Writer) (int64, error) { return io.Copy(w, strings.NewReader(body)) }); err != nil {
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
}
