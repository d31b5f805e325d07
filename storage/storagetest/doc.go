// Package storagetest is the conformance suite every storage backend of
// caddy-mcpauth must pass (the idea of dex's storage/conformance): one set of
// named subtests per role of package storage, each checking the accepted
// side, the refused side with its exact sentinel error (errors.Is), and that
// a refused call changed nothing, plus concurrency cases meant to run under
// -race.
//
// A backend's test calls Run with a function that opens a fresh, empty
// backend:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Backend {
//			s, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{NoSync: true})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// Run closes every backend it opened when its subtest ends, so Close must be
// safe to call twice if open registers a cleanup of its own.
//
// # Semantics the suite pins down
//
// Beyond the doc comments of package storage, the suite fixes these choices
// so that every backend behaves alike:
//
//   - Times round-trip at microsecond precision (the suite uses no finer
//     ones) and are compared with time.Equal; nil and empty slices and maps
//     are equal.
//   - Expiry is decided with the time a call is given, never with the
//     backend's own clock (database now(), time.Now).
//   - A record "expires at" ExpiresAt: at now == ExpiresAt it is expired. A
//     zero ExpiresAt on a grant or consent never expires.
//   - Get* of an expired grant, consent or session returns it as stored (the
//     caller owns the clock); RedeemCode, TakeTicket and RotateRefresh take a
//     time and refuse expired records with ErrNotFound, changing nothing.
//   - A code presented valid is burned whatever happens next: when issue
//     fails, or the grant it returns cannot be created, the code is used and
//     no grant exists. A used code answers ErrCodeUsed with its record
//     (GrantID included) until DeleteExpired removes it, even after expiry.
//   - Refresh rotation. The rule is "the previous token stays valid only
//     until the new one is first used; an unused current token is replaced
//     by a retry of the previous". Presenting the current token rotates:
//     previous := current, current := Next. Presenting the previous token
//     while the current one was never presented rotates too, replacing the
//     unused current token (the client lost the response); previous stays.
//     Any other token of the family (an older one, or a current token that a
//     retry of the previous replaced) is reuse: the grant is revoked in the
//     same transaction (RevokedReason "refresh_reuse") and returned with
//     ErrRefreshReused. Once revoked, every token of the family answers
//     ErrGrantRevoked. Rotation.Check runs first on the grant found; its
//     error is returned as is and changes nothing, even for a stale token
//     (a check that rejects the caller, e.g. another client, must not let it
//     revoke someone's grant). Generation counts successful rotations.
//     A Next hash already known is ErrAlreadyExists with no change.
//     So N concurrent rotations presenting the same current token all
//     succeed one after the other (the first as a rotation, the others as
//     retries of the previous); exactly one Next ends current, and each of
//     the others is reuse when presented later.
//   - AddSigningKey compares against the newest unretired key by CreatedAt
//     (then kid); ListSigningKeys is ordered by CreatedAt, then kid.
//     DeleteSigningKey of an unretired key is ErrConflict.
//     RewrapSigningKey swaps only PrivateJWK, when it equals the expected
//     material (ErrConflict otherwise, ErrNotFound for an unknown kid).
//   - Single-record deletes (DeleteClient, DeleteConsent, DeleteSession,
//     DeleteSigningKey) of something absent return ErrNotFound; callers
//     that want idempotence ignore it. Revoking a revoked grant succeeds
//     and keeps the first RevokedAt and reason; RevokeClientGrants and
//     RevokeSubjectGrants count only the grants they revoked.
//   - TakeTicket of another kind or of an expired ticket refuses and leaves
//     the ticket in place.
//   - Account emails are unique ignoring case (GetAccountByEmail ignores
//     case too); accounts without an email are allowed and never collide.
//     LinkIdentity needs an existing account (ErrNotFound) and is
//     idempotent for the same account.
//   - TouchClient writes only when LastUsedAt is unset or at least an hour
//     old; TouchSession never moves LastSeenAt back.
//   - ListClients and ListAccounts are ordered by id; ListGrants by
//     CreatedAt then id, revoked grants included, filtering on client,
//     subject, both or neither. ListAudit is newest first (ties: the later
//     append first), Since inclusive, Type a prefix when it ends in ".",
//     Limit 0 meaning 100; AppendAudit assigns a unique ID when it is empty
//     and keeps one that is given.
//   - DeleteExpired removes expired codes (used or not), tickets, sessions,
//     consents and grants (absolute ExpiresAt, revoked or not, with every
//     refresh token of their family), and audit events with Time before
//     auditBefore; it returns how many records it removed.
package storagetest
