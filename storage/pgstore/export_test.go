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

// TestExportIsOneSnapshot: records written by another instance while an
// export runs are not part of it (REPEATABLE READ), and the export does not
// block that instance.
func TestExportIsOneSnapshot(t *testing.T) {
	schema := freshSchema(t)
	a, other := openIn(t, schema), openIn(t, schema)
	ctx := t.Context()
	for _, id := range []string{"c1", "c2"} {
		if err := a.CreateClient(ctx, storage.Client{ID: id, Kind: storage.ClientOwned}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	wrote := false
	err := a.Export(ctx, func(r storage.Record) error {
		if !wrote {
			wrote = true
			if err := other.CreateClient(ctx, storage.Client{ID: "c3-during-export", Kind: storage.ClientOwned}); err != nil {
				return err
			}
			if err := other.AppendAudit(ctx, storage.AuditEvent{Type: "during.export"}); err != nil {
				return err
			}
		}
		if r.Kind == storage.KindClient {
			got = append(got, r.Client.ID)
		}
		if r.Kind == storage.KindAudit {
			t.Errorf("audit event written during the export was exported: %+v", r.Audit)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if len(got) != 2 || got[0] != "c1" || got[1] != "c2" {
		t.Fatalf("exported clients %v, want [c1 c2] (the snapshot at the start)", got)
	}
	if _, err := a.GetClient(ctx, "c3-during-export"); err != nil {
		t.Fatalf("the concurrent write did not commit: %v", err)
	}
}
