package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// ErrCopyMismatch is returned by Copy when the destination, read back after
// the last batch, differs from the source for some record kind.
var ErrCopyMismatch = errors.New("storage: the destination differs from the source")

// ErrCopyVerify wraps an error of reading the destination back after the
// last batch.
var ErrCopyVerify = errors.New("storage: verify the destination")

// ErrCopyIncomplete wraps every error of Copy after it marked the
// destination (BeginImport): some batches may be written and the
// destination stays marked incomplete, so that no server opens it. Drop the
// destination (delete the bbolt file, drop the PostgreSQL tables or schema)
// and copy again.
var ErrCopyIncomplete = errors.New("storage: the copy did not complete; the destination is left marked incomplete")

// DefaultCopyBatch is the number of records Copy writes per destination
// transaction when CopyOptions.BatchSize is not set.
const DefaultCopyBatch = 1000

// CopyOptions configure Copy.
type CopyOptions struct {
	// BatchSize is the most records held in memory and written in one
	// destination transaction (0: DefaultCopyBatch).
	BatchSize int
}

// KindCopy is what Copy moved of one record kind: how many records were read
// from the source and read back from the destination, and whether their
// content digests agree.
type KindCopy struct {
	Kind                string
	Source, Destination int
	Same                bool
}

// CopyReport is the outcome of Copy, one entry per RecordKinds kind, in that
// order.
type CopyReport struct {
	Kinds []KindCopy
	// Batches is the number of destination transactions the records took.
	Batches int
}

// Mismatched returns the kinds whose count or content differ.
func (r CopyReport) Mismatched() []string {
	var out []string
	for _, k := range r.Kinds {
		if !k.Same {
			out = append(out, k.Kind)
		}
	}
	return out
}

// Counts returns the records per kind of the source (source true) or of the
// destination.
func (r CopyReport) Counts(source bool) map[string]int {
	m := make(map[string]int, len(r.Kinds))
	for _, k := range r.Kinds {
		if source {
			m[k.Kind] = k.Source
		} else {
			m[k.Kind] = k.Destination
		}
	}
	return m
}

// Copy moves every record of src into the fresh store dst, streaming: the
// source's one consistent export is cut into batches of at most
// opts.BatchSize records, each written in a destination transaction of its
// own, so memory holds one batch, never the whole copy. It stays all or
// nothing by marking dst incomplete first (BeginImport: a store holding
// records is refused with ErrNotEmpty and left untouched), then exports dst
// again, compares the number and a content digest of the records of every
// kind, and only when they agree clears the mark (FinishImport). Every
// failure after the mark wraps ErrCopyIncomplete and leaves dst marked
// (Open refuses it): an error of the source's export is also wrapped with
// "export: ", a read-back that differs returns the report and wraps
// ErrCopyMismatch, an error reading dst back wraps ErrCopyVerify.
func Copy(ctx context.Context, src Snapshotter, dst BatchImporter, opts CopyOptions) (CopyReport, error) {
	size := opts.BatchSize
	if size <= 0 {
		size = DefaultCopyBatch
	}
	if err := dst.BeginImport(ctx); err != nil {
		return CopyReport{}, err
	}
	incomplete := func(err error) error { return fmt.Errorf("%w: %w", ErrCopyIncomplete, err) }

	var rep CopyReport
	srcDigest := newKindDigest()
	batch := make([]Record, 0, size)
	var importErr error
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := dst.ImportBatch(ctx, batch); err != nil {
			importErr = err
			return err
		}
		rep.Batches++
		clear(batch) // drop the references: the records can be collected
		batch = batch[:0]
		return nil
	}
	err := src.Export(ctx, func(r Record) error {
		if err := srcDigest.add(r); err != nil {
			return err
		}
		batch = append(batch, r)
		if len(batch) < size {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	switch {
	case err != nil && importErr == nil:
		return CopyReport{}, incomplete(fmt.Errorf("export: %w", err))
	case err != nil:
		return CopyReport{}, incomplete(err)
	}

	dstDigest := newKindDigest()
	if err := dst.Export(ctx, dstDigest.add); err != nil {
		return CopyReport{}, incomplete(fmt.Errorf("%w: %w", ErrCopyVerify, err))
	}
	for _, k := range RecordKinds {
		rep.Kinds = append(rep.Kinds, KindCopy{
			Kind: k, Source: srcDigest.counts[k], Destination: dstDigest.counts[k],
			Same: srcDigest.counts[k] == dstDigest.counts[k] && srcDigest.digests[k] == dstDigest.digests[k],
		})
	}
	if m := rep.Mismatched(); len(m) > 0 {
		return rep, incomplete(fmt.Errorf("%w for %v", ErrCopyMismatch, m))
	}
	if err := dst.FinishImport(ctx); err != nil {
		return rep, incomplete(err)
	}
	return rep, nil
}

// kindDigest counts records per kind and combines their content digests
// (XOR of the SHA-256 of each record's canonical encoding: independent of
// the order in which backends list them).
type kindDigest struct {
	counts  map[string]int
	digests map[string][sha256.Size]byte
}

func newKindDigest() *kindDigest {
	return &kindDigest{counts: map[string]int{}, digests: map[string][sha256.Size]byte{}}
}

// recordForDigest is a Record with the `json:"-"` hash keys spelled out and
// the refresh family sorted.
type recordForDigest struct {
	Record
	CodeHash, SessionHash, TicketHash []byte
}

func (d *kindDigest) add(r Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	c := recordForDigest{Record: r}
	if r.Code != nil {
		c.CodeHash = r.Code.Hash
	}
	if r.Session != nil {
		c.SessionHash = r.Session.Hash
	}
	if r.Ticket != nil {
		c.TicketHash = r.Ticket.Hash
	}
	if len(r.RefreshHashes) > 0 {
		c.RefreshHashes = slices.Clone(r.RefreshHashes)
		slices.SortFunc(c.RefreshHashes, bytes.Compare)
	} else {
		c.RefreshHashes = nil
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("digest %s record: %w", r.Kind, err)
	}
	h := sha256.Sum256(raw)
	acc := d.digests[r.Kind]
	for i := range acc {
		acc[i] ^= h[i]
	}
	d.digests[r.Kind] = acc
	d.counts[r.Kind]++
	return nil
}
