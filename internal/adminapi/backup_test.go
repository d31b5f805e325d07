package adminapi

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// GET backup streams a consistent copy of the bbolt store (it opens as a
// store holding the same clients) and audits it; other methods and
// sub-paths are refused.
func TestBackup(t *testing.T) {
	e := newEnv(t)
	st, body := adminDo(t, e.srv, "GET", "/mcp_auth/backup", "")
	if st != 200 {
		t.Fatalf("GET backup: %d %s", st, body)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := bboltstore.Open(path, bboltstore.Options{})
	if err != nil {
		t.Fatalf("the copy does not open: %v", err)
	}
	defer cp.Close()
	if c, err := cp.GetClient(context.Background(), "cli-app"); err != nil || c.Name != "CLI App" {
		t.Fatalf("client in the copy: %+v %v", c, err)
	}
	if st, _ := adminDo(t, e.srv, "POST", "/mcp_auth/backup", ""); st != 405 {
		t.Fatalf("POST backup: %d", st)
	}
	if st, _ := adminDo(t, e.srv, "GET", "/mcp_auth/backup/x", ""); st != 404 {
		t.Fatalf("GET backup/x: %d", st)
	}
	evs := auditTypes(t, e.store, "store.backup")
	if len(evs) != 1 || evs[0].Outcome != "success" || evs[0].Detail["bytes"] != strconv.Itoa(len(body)) || evs[0].Detail["by"] != "admin_api" {
		t.Fatalf("audit: %+v", evs)
	}
}

// noBackup is a store that cannot copy itself (PostgreSQL).
type noBackup struct{ storage.Backend }

func TestBackupRefusedWithoutBolt(t *testing.T) {
	e := newEnv(t)
	h, err := New(Config{Store: noBackup{e.store}, Clients: func() (Clients, error) { return e.as, nil }, Accounts: e.login, Keys: e.keys,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveAsCaddy(t, h)
	if st, body := adminDo(t, srv, "GET", "/mcp_auth/backup", ""); st != 409 || !strings.Contains(body, "pg_dump") {
		t.Fatalf("%d %s", st, body)
	}
}
