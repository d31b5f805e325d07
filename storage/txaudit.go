package storage

import "context"

// TxAudit returns the audit events of one write, given the outcome the
// backend is about to commit (nil, or the error it commits with and then
// returns: ErrRefreshReused, the family is revoked) and the grant the write
// concerns (the grant a code redemption creates, the grant rotated or
// revoked by RotateRefresh; nil for the other writes). It is called inside
// the write transaction, and what it returns is appended to the audit log
// in that same transaction, so that a committed security decision always
// has its record and a rolled-back one has none. It must not call the
// store and may run more than once (a backend may retry a transaction).
type TxAudit func(outcome error, g *Grant) []AuditEvent

type txAuditKey struct{}

// WithTxAudit attaches f to ctx: the next write made with ctx by one of the
// methods that document it (Codes.RedeemCode when it creates the grant,
// Grants.RotateRefresh on rotation and on reuse, Grants.RevokeGrant,
// Clients.SetClientDisabled, Consents.PutConsent, Sessions.CreateSession)
// appends f's events in its own transaction. Other methods ignore it.
func WithTxAudit(ctx context.Context, f TxAudit) context.Context {
	return context.WithValue(ctx, txAuditKey{}, f)
}

// TxAuditEvents returns the events attached to ctx for outcome (nil when
// none are). Backends call it inside the transaction being committed.
func TxAuditEvents(ctx context.Context, outcome error, g *Grant) []AuditEvent {
	f, _ := ctx.Value(txAuditKey{}).(TxAudit)
	if f == nil {
		return nil
	}
	return f(outcome, g)
}

// HasTxAudit reports whether ctx carries a TxAudit (a backend that writes
// without a transaction opens one only then).
func HasTxAudit(ctx context.Context) bool {
	f, _ := ctx.Value(txAuditKey{}).(TxAudit)
	return f != nil
}
