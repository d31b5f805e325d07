package caddymodule

import (
	"context"
	"errors"
	"github.com/mcpauth/caddy-mcpauth/config"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// TestServerRefusesHalfCopiedStore: the app does not provision on a bbolt
// file a migrate-store copy marked and never finished, and says why.
func TestServerRefusesHalfCopiedStore(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "mcpauth.db")
	s, err := bboltstore.Open(dbPath, bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.BeginImport(t.Context()); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	a := &App{App: config.App{Issuer: testIssuer, Storage: StorageConfig{Path: dbPath}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err = a.Provision(ctx)
	defer a.Cleanup()
	if !errors.Is(err, storage.ErrIncompleteCopy) {
		t.Fatalf("Provision on a half-copied store: %v, want ErrIncompleteCopy", err)
	}
	for _, want := range []string{"refusing to start", "unfinished 'mcpauth migrate-store' copy", "delete the file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
