// Package audit holds the audit log's event names (events.go, the one list
// of every type the log can hold) and its one batched writer (writer.go).
//
// What the log guarantees: events that record a security decision (tokens
// issued, refresh-token reuse and the family revoked, a grant revoked on a
// code replay, a client disabled, consent granted, a login) are written by
// the storage backend in the same transaction as the change they describe
// (storage.WithTxAudit), so an acknowledged change always has its record,
// even after a crash; a login failure for a known account is written
// before the response. The other events go through the Writer: batched
// (at most Linger late), retried after a failed write, kept in a bounded
// buffer, and counted as dropped (OnDrop) when that buffer overflows or the
// process dies first. Unauthenticated refusals are aggregated
// (internal/abuse) and never written one per request.
package audit
