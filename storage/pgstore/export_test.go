package pgstore

import (
	"path/filepath"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
	"github.com/mcpauth/caddy-mcpauth/storage/storagetest"
)

func openBbolt(t *testing.T) storage.Backend {
	s, err := bboltstore.Open(filepath.Join(t.TempDir(), "mcpauth.db"), bboltstore.Options{NoSync: true})
	if err != nil {
		t.Fatalf("bboltstore.Open: %v", err)
	}
	return s
}

func openPG(t *testing.T) storage.Backend { return openTest(t) }

// TestSnapshotAcrossBackends moves a filled store from bbolt to PostgreSQL
// and back with Export/Import and compares everything (the migration path
// of caddy-mcpauth mcpauth migrate-store).
func TestSnapshotAcrossBackends(t *testing.T) {
	t.Run("BboltToPostgres", func(t *testing.T) { storagetest.RunSnapshot(t, openBbolt, openPG) })
	t.Run("PostgresToBbolt", func(t *testing.T) { storagetest.RunSnapshot(t, openPG, openBbolt) })
}
