package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// runCopy checks storage.Copy (the store-to-store copy behind
// `caddy-mcpauth mcpauth migrate-store`) from src's backend into dst's:
// streamed in bounded batches, one destination transaction each, all or
// nothing through the incomplete mark.
func runCopy(t *testing.T, src, dst *suite, snap func(*testing.T, storage.Backend) storage.Snapshotter) {
	bi := func(t *testing.T, b storage.Backend) storage.BatchImporter {
		t.Helper()
		imp, ok := b.(storage.BatchImporter)
		if !ok {
			t.Fatalf("backend %T does not implement storage.BatchImporter", b)
		}
		return imp
	}
	complete := func(t *testing.T, what string, b storage.Backend) {
		t.Helper()
		must(t, what+": CheckComplete", bi(t, b).CheckComplete(t.Context()))
	}
	// incomplete fails unless b is marked and refuses another copy.
	incomplete := func(t *testing.T, what string, b storage.Backend) {
		t.Helper()
		wantErr(t, what+": CheckComplete", bi(t, b).CheckComplete(t.Context()), storage.ErrIncompleteCopy)
		wantErr(t, what+": BeginImport again", bi(t, b).BeginImport(t.Context()), storage.ErrNotEmpty)
	}

	t.Run("Copy", func(t *testing.T) {
		ctx := t.Context()
		a := src.backend(t)
		fillSnapshot(t, a)
		want := map[string]int{}
		for _, r := range exportAll(t, snap(t, a)) {
			want[r.Kind]++
		}
		b := dst.backend(t)
		rep, err := storage.Copy(ctx, snap(t, a), bi(t, b), storage.CopyOptions{})
		must(t, "Copy", err)
		if len(rep.Kinds) != len(storage.RecordKinds) {
			t.Fatalf("report has %d kinds, want %d", len(rep.Kinds), len(storage.RecordKinds))
		}
		for i, k := range rep.Kinds {
			if k.Kind != storage.RecordKinds[i] || !k.Same || k.Source != want[k.Kind] || k.Destination != want[k.Kind] {
				t.Errorf("report %+v, want kind %s with %d records on both sides", k, storage.RecordKinds[i], want[storage.RecordKinds[i]])
			}
		}
		if rep.Batches != 1 {
			t.Errorf("%d batches for a small store, want 1", rep.Batches)
		}
		compareStores(t, a, b)
		complete(t, "after the copy", b)

		// A second copy into the now filled destination is refused up
		// front and changes nothing: no mark, no record.
		before := canonical(exportAll(t, snap(t, b)))
		_, err = storage.Copy(ctx, snap(t, a), bi(t, b), storage.CopyOptions{})
		wantErr(t, "Copy into a filled store", err, storage.ErrNotEmpty)
		if errors.Is(err, storage.ErrCopyIncomplete) {
			t.Fatalf("refused copy reports an incomplete destination: %v", err)
		}
		same(t, "destination after the refused copy", canonical(exportAll(t, snap(t, b))), before)
		complete(t, "after the refused copy", b)
	})

	t.Run("CopyInBoundedBatches", func(t *testing.T) {
		ctx := t.Context()
		a := src.backend(t)
		fillSnapshot(t, a)
		fillMany(t, a)
		recs := exportAll(t, snap(t, a))
		const size = 16
		b := dst.backend(t)
		rec := &recordingImporter{BatchImporter: bi(t, b)}
		rep, err := storage.Copy(ctx, snap(t, a), rec, storage.CopyOptions{BatchSize: size})
		must(t, "Copy", err)
		if m := rep.Mismatched(); len(m) > 0 {
			t.Fatalf("mismatched kinds %v", m)
		}
		wantBatches := (len(recs) + size - 1) / size
		if len(rec.sizes) != wantBatches || rep.Batches != wantBatches || wantBatches < 10 {
			t.Fatalf("%d records in %d batches (report %d), want %d (at least 10)", len(recs), len(rec.sizes), rep.Batches, wantBatches)
		}
		total, peak := 0, 0
		for _, n := range rec.sizes {
			total += n
			peak = max(peak, n)
		}
		if peak != size || total != len(recs) {
			t.Fatalf("peak batch %d records (want %d), %d records written (want %d)", peak, size, total, len(recs))
		}
		for _, c := range rec.marked {
			if !c {
				t.Fatal("a batch was written into a store not marked incomplete")
			}
		}
		// Same content, audit order across batches included.
		same(t, "destination", canonical(exportAll(t, snap(t, b))), canonical(recs))
		compareStores(t, a, b)
		complete(t, "after the copy", b)
	})

	t.Run("CopyReadBackDiffers", func(t *testing.T) {
		a := src.backend(t)
		fillSnapshot(t, a)
		b := dst.backend(t)
		rep, err := storage.Copy(t.Context(), snap(t, a), droppingExport{bi(t, b), storage.KindAudit}, storage.CopyOptions{})
		wantErr(t, "Copy with a lossy read-back", err, storage.ErrCopyMismatch)
		wantErr(t, "Copy with a lossy read-back", err, storage.ErrCopyIncomplete)
		if m := rep.Mismatched(); len(m) != 1 || m[0] != storage.KindAudit {
			t.Fatalf("mismatched kinds %v, want [%s]", m, storage.KindAudit)
		}
		incomplete(t, "after the mismatch", b)
	})

	t.Run("CopySourceFails", func(t *testing.T) {
		a := src.backend(t)
		fillSnapshot(t, a)
		fillMany(t, a)
		b := dst.backend(t)
		_, err := storage.Copy(t.Context(), failingExport{snap(t, a), 40}, bi(t, b), storage.CopyOptions{BatchSize: 16})
		wantErr(t, "Copy from a failing source", err, errTest)
		wantErr(t, "Copy from a failing source", err, storage.ErrCopyIncomplete)
		if n := len(exportAll(t, snap(t, b))); n != 32 {
			t.Fatalf("the failed copy wrote %d records, want the 2 full batches (32) before the failure", n)
		}
		incomplete(t, "after the failed source", b)
	})

	t.Run("CopyBatchFails", func(t *testing.T) {
		a := src.backend(t)
		fillSnapshot(t, a)
		fillMany(t, a)
		b := dst.backend(t)
		rec := &recordingImporter{BatchImporter: bi(t, b), failAt: 3}
		_, err := storage.Copy(t.Context(), snap(t, a), rec, storage.CopyOptions{BatchSize: 16})
		wantErr(t, "Copy with a failing batch", err, errTest)
		wantErr(t, "Copy with a failing batch", err, storage.ErrCopyIncomplete)
		if len(rec.sizes) != 3 {
			t.Fatalf("%d batches tried, want the copy to stop at the failing third", len(rec.sizes))
		}
		if n := len(exportAll(t, snap(t, b))); n != 32 {
			t.Fatalf("%d records written, want the 2 batches before the failure (32)", n)
		}
		incomplete(t, "after the failed batch", b)
	})

	t.Run("ImportBatchNeedsBegin", func(t *testing.T) {
		ctx := t.Context()
		a := src.backend(t)
		fillSnapshot(t, a)
		recs := exportAll(t, snap(t, a))
		b := dst.backend(t)
		if err := bi(t, b).ImportBatch(ctx, recs[:1]); err == nil {
			t.Fatal("ImportBatch without BeginImport succeeded")
		}
		if err := bi(t, b).FinishImport(ctx); err == nil {
			t.Fatal("FinishImport without BeginImport succeeded")
		}
		if n := len(exportAll(t, snap(t, b))); n != 0 {
			t.Fatalf("refused batch wrote %d records", n)
		}
		complete(t, "fresh store", b)

		// A batch that fails rolls back that batch only; the mark stays.
		must(t, "BeginImport", bi(t, b).BeginImport(ctx))
		incomplete(t, "after BeginImport", b)
		must(t, "ImportBatch", bi(t, b).ImportBatch(ctx, recs[:2]))
		err := bi(t, b).ImportBatch(ctx, []storage.Record{recs[2], recs[0]})
		wantErr(t, "ImportBatch with a duplicate", err, storage.ErrAlreadyExists)
		if n := len(exportAll(t, snap(t, b))); n != 2 {
			t.Fatalf("%d records after a failed batch, want the 2 of the first", n)
		}
		incomplete(t, "after a failed batch", b)
		must(t, "ImportBatch", bi(t, b).ImportBatch(ctx, recs[2:]))
		must(t, "FinishImport", bi(t, b).FinishImport(ctx))
		complete(t, "after FinishImport", b)
		compareStores(t, a, b)
	})
}

// fillMany adds records of several kinds to a store fillSnapshot filled:
// enough for many batches, with audit events of one time spread over
// several batches (their order must survive).
func fillMany(t *testing.T, b storage.Backend) {
	t.Helper()
	ctx := t.Context()
	for i := range 60 {
		must(t, "CreateClient", b.CreateClient(ctx, newClient(fmt.Sprintf("many-client-%03d", i))))
	}
	for i := range 30 {
		id := fmt.Sprintf("many-acct-%03d", i)
		must(t, "CreateAccount", b.CreateAccount(ctx, newAccount(id, id+"@example.com")))
		must(t, "LinkIdentity", b.LinkIdentity(ctx, "oidc:many", fmt.Sprintf("sub-%03d", i), id))
	}
	for i := range 40 {
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant(fmt.Sprintf("many-grant-%03d", i), "client-1", "acct-1", fmt.Sprintf("many-r%03d", i))))
	}
	var evs []storage.AuditEvent
	for i := range 90 {
		e := event(fmt.Sprintf("many.%03d", i), "acct-1", "client-1", at(time.Hour))
		evs = append(evs, e)
	}
	must(t, "AppendAudit", b.AppendAudit(ctx, evs...))
}

// recordingImporter records the size of every batch and whether the store
// was marked incomplete while it was written; failAt > 0 fails that batch
// (1-based) without writing it.
type recordingImporter struct {
	storage.BatchImporter
	failAt int
	sizes  []int
	marked []bool
}

func (r *recordingImporter) ImportBatch(ctx context.Context, recs []storage.Record) error {
	r.sizes = append(r.sizes, len(recs))
	r.marked = append(r.marked, errors.Is(r.CheckComplete(ctx), storage.ErrIncompleteCopy))
	if len(r.sizes) == r.failAt {
		return errTest
	}
	return r.BatchImporter.ImportBatch(ctx, recs)
}

// droppingExport reads a store back without the first record of one kind:
// a destination that lost a record.
type droppingExport struct {
	storage.BatchImporter
	kind string
}

func (d droppingExport) Export(ctx context.Context, emit func(storage.Record) error) error {
	dropped := false
	return d.BatchImporter.Export(ctx, func(r storage.Record) error {
		if r.Kind == d.kind && !dropped {
			dropped = true
			return nil
		}
		return emit(r)
	})
}

// failingExport fails after its first n records.
type failingExport struct {
	storage.Snapshotter
	n int
}

func (f failingExport) Export(ctx context.Context, emit func(storage.Record) error) error {
	n := 0
	return f.Snapshotter.Export(ctx, func(r storage.Record) error {
		if n++; n > f.n {
			return errTest
		}
		return emit(r)
	})
}
