package pgstore

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// auditSeq breaks ties between ids of the same nanosecond in this process;
// the random part keeps ids of different instances apart.
var auditSeq atomic.Uint32

// auditNanos is an event's position in the log: Unix nanoseconds, times
// before 1970 counting as 0.
func auditNanos(t time.Time) int64 {
	n := t.UnixNano()
	if n < 0 || t.Year() < 1970 {
		return 0
	}
	return n
}

// auditID returns a time-ordered unique id of 32 hex digits: 16 of the
// event's Unix nanoseconds, 8 of a process counter, 8 random. Lexical order
// is time order.
func auditID(t time.Time) string {
	return fmt.Sprintf("%016x%08x%08x", uint64(auditNanos(t)), auditSeq.Add(1), randUint32())
}

// defaultAuditLimit applies when AuditQuery.Limit is zero or negative.
const defaultAuditLimit = 100

// AppendAudit stores events in one transaction. An event with a zero Time
// gets the store's clock; one with an empty ID gets a time-ordered unique id.
func (s *Store) AppendAudit(ctx context.Context, events ...storage.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx pgx.Tx) error { return s.putAudit(ctx, tx, events) })
}

// putAudit inserts events inside tx (AppendAudit, and the events of a
// storage.TxAudit in the transaction of the change they describe).
func (s *Store) putAudit(ctx context.Context, tx pgx.Tx, events []storage.AuditEvent) error {
	const op = "append audit"
	b := &pgx.Batch{}
	for _, e := range events {
		if e.Time.IsZero() {
			e.Time = s.now()
		}
		if e.ID == "" {
			e.ID = auditID(e.Time)
		}
		data, err := encode(op, e)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO mcpauth_audit (id, at, at_ns, type, client_id, subject, data) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			e.ID, e.Time, auditNanos(e.Time), e.Type, e.ClientID, e.Subject, data)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return dbErr(op, err)
	}
	return nil
}

// txAudit inserts the storage.TxAudit events of ctx for outcome in tx.
func (s *Store) txAudit(ctx context.Context, tx pgx.Tx, outcome error, g *storage.Grant) error {
	evs := storage.TxAuditEvents(ctx, outcome, g)
	if len(evs) == 0 {
		return nil
	}
	return s.putAudit(ctx, tx, evs)
}

// execAudited runs one statement: on the pool when ctx carries no
// storage.TxAudit, else in a transaction with the audit events (when the
// statement changed a row). It returns the statement's rows affected.
func (s *Store) execAudited(ctx context.Context, op, sql string, args ...any) (int64, error) {
	if !storage.HasTxAudit(ctx) {
		tag, err := s.pool.Exec(ctx, sql, args...)
		if err != nil {
			return 0, dbErr(op, err)
		}
		return tag.RowsAffected(), nil
	}
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return dbErr(op, err)
		}
		if n = tag.RowsAffected(); n == 0 {
			return nil
		}
		return s.txAudit(ctx, tx, nil, nil)
	})
	return n, err
}

// ListAudit returns events matching q, newest first (event time, then
// append order), at or after q.Since, at most q.Limit (0: 100). A Type
// ending in "." matches as a prefix.
func (s *Store) ListAudit(ctx context.Context, q storage.AuditQuery) ([]storage.AuditEvent, error) {
	const op = "list audit"
	limit := q.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	var since int64
	if !q.Since.IsZero() {
		since = auditNanos(q.Since)
	}
	prefix := strings.HasSuffix(q.Type, ".")
	rows, err := s.pool.Query(ctx, `SELECT data FROM mcpauth_audit
WHERE at_ns >= $1
  AND ($2 = '' OR (CASE WHEN $3 THEN left(type, length($2)) = $2 ELSE type = $2 END))
  AND ($4 = '' OR client_id = $4)
  AND ($5 = '' OR subject = $5)
ORDER BY at_ns DESC, seq DESC LIMIT $6`, since, q.Type, prefix, q.ClientID, q.Subject, limit)
	if err != nil {
		return nil, dbErr(op, err)
	}
	return collect(rows, op, func(data []byte) (storage.AuditEvent, error) {
		var e storage.AuditEvent
		return e, decode(op, data, &e)
	})
}

// DeleteExpired removes expired codes, grants (with their refresh token
// hashes), sessions, tickets, email verifications, consents and used assertion ids, and audit events older than
// auditBefore (zero: keep all), in one transaction. It returns how many
// records it removed. Records without an expiry are kept.
func (s *Store) DeleteExpired(ctx context.Context, now, auditBefore time.Time) (int, error) {
	var total int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		total = 0
		for _, q := range []string{
			`DELETE FROM mcpauth_codes WHERE expires_at <= $1`,
			`DELETE FROM mcpauth_grants WHERE expires_at <= $1`,
			`DELETE FROM mcpauth_sessions WHERE expires_at <= $1`,
			`DELETE FROM mcpauth_tickets WHERE expires_at <= $1`,
			`DELETE FROM mcpauth_email_verifications WHERE expires_at <= $1`,
			`DELETE FROM mcpauth_consents WHERE expires_at <= $1`,
			`DELETE FROM mcpauth_replays WHERE expires_at <= $1`,
		} {
			tag, err := tx.Exec(ctx, q, now)
			if err != nil {
				return dbErr("delete expired", err)
			}
			total += int(tag.RowsAffected())
		}
		tag, err := tx.Exec(ctx, `DELETE FROM mcpauth_limits WHERE end_ns <= $1`, now.UnixNano())
		if err != nil {
			return dbErr("delete expired", err)
		}
		total += int(tag.RowsAffected())
		if !auditBefore.IsZero() {
			tag, err := tx.Exec(ctx, `DELETE FROM mcpauth_audit WHERE at_ns < $1`, auditNanos(auditBefore))
			if err != nil {
				return dbErr("delete expired", err)
			}
			total += int(tag.RowsAffected())
		}
		return nil
	})
	return total, err
}
