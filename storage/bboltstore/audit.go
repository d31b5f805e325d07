package bboltstore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// defaultAuditLimit applies when AuditQuery.Limit is zero or negative.
const defaultAuditLimit = 100

// auditKey orders events by time: 8-byte big-endian unix nanoseconds (times
// before 1970 count as 0), then an 8-byte sequence that keeps events of one
// nanosecond apart and in append order.
func auditKey(t time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k[:8], auditNanos(t))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func auditNanos(t time.Time) uint64 {
	n := t.UnixNano()
	if n < 0 || t.Year() < 1970 {
		return 0
	}
	return uint64(n)
}

// AppendAudit implements storage.Audit. Concurrent appends are coalesced
// into one commit (db.Batch). An event with an empty ID gets the hex form of
// its key, which is unique and sorts like the log; a zero Time becomes now.
func (s *Store) AppendAudit(ctx context.Context, events ...storage.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	evs := make([]storage.AuditEvent, len(events))
	copy(evs, events)
	for i := range evs {
		if evs[i].Time.IsZero() {
			evs[i].Time = s.now()
		}
	}
	// Batch may run fn more than once (alone, after a failed batch); every
	// run assigns fresh keys inside its own transaction.
	return s.db.Batch(func(tx *bolt.Tx) error { return s.putAudit(tx, evs) })
}

// putAudit appends events inside tx (AppendAudit, and the events of a
// storage.TxAudit in the transaction of the change they describe).
func (s *Store) putAudit(tx *bolt.Tx, evs []storage.AuditEvent) error {
	b := bucket(tx, bktAudit)
	for _, e := range evs {
		if e.Time.IsZero() {
			e.Time = s.now()
		}
		var k []byte
		for {
			k = auditKey(e.Time, s.seq.Add(1))
			if b.Get(k) == nil {
				break
			}
		}
		if e.ID == "" {
			e.ID = hex.EncodeToString(k)
		}
		if err := putJSON(b, k, e); err != nil {
			return err
		}
	}
	return nil
}

// txAudit appends the storage.TxAudit events of ctx for outcome in tx.
func (s *Store) txAudit(ctx context.Context, tx *bolt.Tx, outcome error, g *storage.Grant) error {
	evs := storage.TxAuditEvents(ctx, outcome, g)
	if len(evs) == 0 {
		return nil
	}
	return s.putAudit(tx, evs)
}

func auditMatches(e storage.AuditEvent, q storage.AuditQuery) bool {
	if q.Type != "" {
		if strings.HasSuffix(q.Type, ".") {
			if !strings.HasPrefix(e.Type, q.Type) {
				return false
			}
		} else if e.Type != q.Type {
			return false
		}
	}
	if q.ClientID != "" && e.ClientID != q.ClientID {
		return false
	}
	if q.Subject != "" && e.Subject != q.Subject {
		return false
	}
	return true
}

// ListAudit implements storage.Audit: newest first, events at or after
// q.Since, at most q.Limit (0 means 100).
func (s *Store) ListAudit(ctx context.Context, q storage.AuditQuery) ([]storage.AuditEvent, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	var since uint64
	if !q.Since.IsZero() {
		since = auditNanos(q.Since)
	}
	var out []storage.AuditEvent
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := bucket(tx, bktAudit).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			if len(k) == 16 && binary.BigEndian.Uint64(k[:8]) < since {
				break
			}
			var e storage.AuditEvent
			if err := decode(v, &e); err != nil {
				return err
			}
			if auditMatches(e, q) {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
