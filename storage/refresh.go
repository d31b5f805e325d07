package storage

import (
	"crypto/subtle"
	"time"
)

// ReasonRefreshReuse is the RevokedReason of a grant family that
// RotateRefresh revoked because a refresh token was presented after it had
// stopped being valid.
const ReasonRefreshReuse = "refresh_reuse"

// RotateGrant is the refresh-token rotation rule (requirements 9 and 37),
// written once for every backend: a backend finds the grant that r.Presented
// belongs to, calls RotateGrant inside its write transaction and stores what
// it returns. It touches nothing itself.
//
// The checks, in order:
//   - r.Check (its error is returned as is);
//   - a revoked grant: ErrGrantRevoked;
//   - an expired family (ExpiresAt): ErrNotFound;
//   - the presented token's place in the family:
//     the current token rotates and becomes the previous token, retired at
//     r.Now; the previous token rotates once more, only within r.Grace of
//     its retirement and only once (the client lost the response that
//     carried the current token, which was never used and is replaced);
//     anything else is reuse: an older token, the previous token after the
//     grace window, a second use of it, or any use of it when r.Grace is
//     zero (strict rotation). A grant stored before retirement times were
//     recorded has no grace left;
//   - an expired current token (RefreshExpiresAt): ErrNotFound.
//
// On success the backend writes the returned grant and registers r.Next as
// one of its refresh tokens. On reuse the returned grant is revoked
// (ReasonRefreshReuse at r.Now) and the error is ErrRefreshReused: the
// backend writes that grant, commits, and returns both. On any other error
// it writes nothing.
func RotateGrant(g Grant, r Rotation) (Grant, error) {
	if r.Check != nil {
		if err := r.Check(g); err != nil {
			return g, err
		}
	}
	if g.Revoked() {
		return g, ErrGrantRevoked
	}
	if expiredAt(g.ExpiresAt, r.Now) {
		return g, ErrNotFound
	}
	switch {
	case sameHash(r.Presented, g.RefreshHash):
		g.PreviousHash = g.RefreshHash
		g.PreviousRetiredAt = r.Now
		g.PreviousUsed = false
	case sameHash(r.Presented, g.PreviousHash) && inGrace(g, r):
		// Lost response: the unused current token is replaced; the previous
		// token stays previous and has had its one retry.
		g.PreviousUsed = true
	default:
		g.RevokedAt = r.Now
		g.RevokedReason = ReasonRefreshReuse
		return g, ErrRefreshReused
	}
	if expiredAt(g.RefreshExpiresAt, r.Now) {
		return g, ErrNotFound
	}
	g.RefreshHash = append([]byte(nil), r.Next...)
	g.RefreshExpiresAt = r.NextExpiresAt
	g.Generation++
	return g, nil
}

// inGrace reports whether the previous token of g may still be redeemed
// once at r.Now.
func inGrace(g Grant, r Rotation) bool {
	if g.PreviousUsed || r.Grace <= 0 || g.PreviousRetiredAt.IsZero() {
		return false
	}
	return r.Now.Before(g.PreviousRetiredAt.Add(r.Grace))
}

func sameHash(a, b []byte) bool {
	return len(a) > 0 && subtle.ConstantTimeCompare(a, b) == 1
}

// expiredAt reports whether something ending at end is over at now; a zero
// end never expires (the backends' rule).
func expiredAt(end, now time.Time) bool {
	return !end.IsZero() && !now.Before(end)
}
