package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ErrCopyMismatch is returned by Copy when the destination, read back after
// the import committed, differs from the source for some record kind.
var ErrCopyMismatch = errors.New("storage: the destination differs from the source")

// ErrCopyVerify wraps an error of reading the destination back after the
// import committed.
var ErrCopyVerify = errors.New("storage: verify the destination")

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

// Copy moves every record of src into the empty store dst (Import's
// contract: ErrNotEmpty otherwise, all or nothing), then exports dst again
// and compares the number and a content digest of the records of every kind.
// Export feeds Import through a bounded channel: Export holds its snapshot
// while Import writes, and records are never all in memory at once. A copy
// that committed but reads back differently returns the report and an error
// wrapping ErrCopyMismatch. Errors of the import are returned as is (nothing
// was written; errors of the source's export are wrapped with "export: "),
// an error reading the destination back wraps ErrCopyVerify.
func Copy(ctx context.Context, src, dst Snapshotter) (CopyReport, error) {
	srcDigest := newKindDigest()
	recs := make(chan Record, 256)
	exportErr := make(chan error, 1)
	ectx, cancelExport := context.WithCancel(ctx)
	defer cancelExport()
	go func() {
		defer close(recs)
		exportErr <- src.Export(ectx, func(r Record) error {
			if err := srcDigest.add(r); err != nil {
				return err
			}
			select {
			case recs <- r:
				return nil
			case <-ectx.Done():
				return ectx.Err()
			}
		})
	}()
	var (
		exportDone   bool
		exportResult error
	)
	importErr := dst.Import(ctx, func() (Record, error) {
		if r, ok := <-recs; ok {
			return r, nil
		}
		exportDone, exportResult = true, <-exportErr
		if exportResult != nil {
			return Record{}, fmt.Errorf("export: %w", exportResult)
		}
		return Record{}, io.EOF
	})
	if !exportDone {
		// Import stopped early: stop Export and let it return.
		cancelExport()
		for range recs {
		}
		<-exportErr
	}
	if importErr != nil {
		return CopyReport{}, importErr
	}

	dstDigest := newKindDigest()
	if err := dst.Export(ctx, dstDigest.add); err != nil {
		return CopyReport{}, fmt.Errorf("%w: %w", ErrCopyVerify, err)
	}
	var rep CopyReport
	for _, k := range RecordKinds {
		rep.Kinds = append(rep.Kinds, KindCopy{
			Kind: k, Source: srcDigest.counts[k], Destination: dstDigest.counts[k],
			Same: srcDigest.counts[k] == dstDigest.counts[k] && srcDigest.digests[k] == dstDigest.digests[k],
		})
	}
	if m := rep.Mismatched(); len(m) > 0 {
		return rep, fmt.Errorf("%w for %v", ErrCopyMismatch, m)
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
