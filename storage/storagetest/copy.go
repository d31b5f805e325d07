package storagetest

import (
	"context"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// runCopy checks storage.Copy (the store-to-store copy behind
// `caddy-mcpauth mcpauth migrate-store`) from src's backend into dst's.
func runCopy(t *testing.T, src, dst *suite, snap func(*testing.T, storage.Backend) storage.Snapshotter) {
	t.Run("Copy", func(t *testing.T) {
		ctx := t.Context()
		a := src.backend(t)
		fillSnapshot(t, a)
		want := map[string]int{}
		for _, r := range exportAll(t, snap(t, a)) {
			want[r.Kind]++
		}
		b := dst.backend(t)
		rep, err := storage.Copy(ctx, snap(t, a), snap(t, b))
		must(t, "Copy", err)
		if len(rep.Kinds) != len(storage.RecordKinds) {
			t.Fatalf("report has %d kinds, want %d", len(rep.Kinds), len(storage.RecordKinds))
		}
		for i, k := range rep.Kinds {
			if k.Kind != storage.RecordKinds[i] || !k.Same || k.Source != want[k.Kind] || k.Destination != want[k.Kind] {
				t.Errorf("report %+v, want kind %s with %d records on both sides", k, storage.RecordKinds[i], want[storage.RecordKinds[i]])
			}
		}
		compareStores(t, a, b)

		// A second copy into the now filled destination is refused and
		// changes nothing.
		before := canonical(exportAll(t, snap(t, b)))
		_, err = storage.Copy(ctx, snap(t, a), snap(t, b))
		wantErr(t, "Copy into a filled store", err, storage.ErrNotEmpty)
		same(t, "destination after the refused copy", canonical(exportAll(t, snap(t, b))), before)
	})

	t.Run("CopyReadBackDiffers", func(t *testing.T) {
		a := src.backend(t)
		fillSnapshot(t, a)
		b := dst.backend(t)
		rep, err := storage.Copy(t.Context(), snap(t, a), droppingExport{snap(t, b), storage.KindAudit})
		wantErr(t, "Copy with a lossy read-back", err, storage.ErrCopyMismatch)
		if m := rep.Mismatched(); len(m) != 1 || m[0] != storage.KindAudit {
			t.Fatalf("mismatched kinds %v, want [%s]", m, storage.KindAudit)
		}
	})

	t.Run("CopySourceFails", func(t *testing.T) {
		a := src.backend(t)
		fillSnapshot(t, a)
		b := dst.backend(t)
		_, err := storage.Copy(t.Context(), failingExport{snap(t, a)}, snap(t, b))
		wantErr(t, "Copy from a failing source", err, errTest)
		if n := len(exportAll(t, snap(t, b))); n != 0 {
			t.Fatalf("a failed copy left %d records behind", n)
		}
	})
}

// droppingExport reads a store back without the first record of one kind:
// a destination that lost a record.
type droppingExport struct {
	storage.Snapshotter
	kind string
}

func (d droppingExport) Export(ctx context.Context, emit func(storage.Record) error) error {
	dropped := false
	return d.Snapshotter.Export(ctx, func(r storage.Record) error {
		if r.Kind == d.kind && !dropped {
			dropped = true
			return nil
		}
		return emit(r)
	})
}

// failingExport fails after its first record.
type failingExport struct{ storage.Snapshotter }

func (f failingExport) Export(ctx context.Context, emit func(storage.Record) error) error {
	n := 0
	return f.Snapshotter.Export(ctx, func(r storage.Record) error {
		if n++; n > 1 {
			return errTest
		}
		return emit(r)
	})
}
