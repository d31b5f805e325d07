package storagetest

import (
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func newVerification(secret, accountID string) storage.EmailVerification {
	return storage.EmailVerification{
		Hash:         Hash(secret),
		AccountID:    accountID,
		Email:        accountID + "@example.com",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		CreatedAt:    at(0),
		ExpiresAt:    at(24 * time.Hour),
	}
}

// testVerifications: the single-use, expiring email verification links of
// signup (requirement 36). Only hashes are stored; a link is used once;
// using one retires the account's older links.
func (s *suite) testVerifications(t *testing.T) {
	t.Run("GetThenConsumeOnce", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		v := newVerification("link-1", "acct-1")
		must(t, "SaveEmailVerification", b.SaveEmailVerification(ctx, v))
		got, err := b.GetEmailVerification(ctx, v.Hash, at(time.Minute))
		must(t, "GetEmailVerification", err)
		same(t, "GetEmailVerification", got, v)
		got, err = b.GetEmailVerification(ctx, v.Hash, at(time.Minute))
		must(t, "GetEmailVerification again (a look uses nothing up)", err)
		same(t, "GetEmailVerification again", got, v)
		got, err = b.ConsumeEmailVerification(ctx, v.Hash, at(time.Minute))
		must(t, "ConsumeEmailVerification", err)
		same(t, "ConsumeEmailVerification", got, v)
		_, err = b.ConsumeEmailVerification(ctx, v.Hash, at(time.Minute))
		wantErr(t, "ConsumeEmailVerification again", err, storage.ErrNotFound)
		_, err = b.GetEmailVerification(ctx, v.Hash, at(time.Minute))
		wantErr(t, "GetEmailVerification after use", err, storage.ErrNotFound)
	})
	t.Run("Unknown", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		_, err := b.GetEmailVerification(ctx, Hash("nope"), at(0))
		wantErr(t, "GetEmailVerification", err, storage.ErrNotFound)
		_, err = b.ConsumeEmailVerification(ctx, Hash("nope"), at(0))
		wantErr(t, "ConsumeEmailVerification", err, storage.ErrNotFound)
	})
	t.Run("ConsumeRetiresTheAccountsOtherLinks", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		older, newer, other := newVerification("link-1", "acct-1"), newVerification("link-2", "acct-1"), newVerification("link-3", "acct-2")
		for _, v := range []storage.EmailVerification{older, newer, other} {
			must(t, "SaveEmailVerification", b.SaveEmailVerification(ctx, v))
		}
		_, err := b.ConsumeEmailVerification(ctx, newer.Hash, at(time.Minute))
		must(t, "ConsumeEmailVerification", err)
		_, err = b.ConsumeEmailVerification(ctx, older.Hash, at(time.Minute))
		wantErr(t, "ConsumeEmailVerification of a retired link", err, storage.ErrNotFound)
		got, err := b.ConsumeEmailVerification(ctx, other.Hash, at(time.Minute))
		must(t, "ConsumeEmailVerification of another account's link", err)
		same(t, "other account's link", got, other)
	})
	t.Run("ExpiredRefusedKept", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		v := newVerification("link-1", "acct-1")
		must(t, "SaveEmailVerification", b.SaveEmailVerification(ctx, v))
		_, err := b.GetEmailVerification(ctx, v.Hash, v.ExpiresAt)
		wantErr(t, "GetEmailVerification at expiry", err, storage.ErrNotFound)
		_, err = b.ConsumeEmailVerification(ctx, v.Hash, v.ExpiresAt)
		wantErr(t, "ConsumeEmailVerification at expiry", err, storage.ErrNotFound)
		_, err = b.ConsumeEmailVerification(ctx, v.Hash, v.ExpiresAt.Add(-time.Microsecond))
		must(t, "ConsumeEmailVerification before expiry (the refusal changed nothing)", err)
	})
	t.Run("DuplicateRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		v := newVerification("link-1", "acct-1")
		must(t, "SaveEmailVerification", b.SaveEmailVerification(ctx, v))
		other := v
		other.AccountID, other.Email = "attacker", "attacker@example.com"
		wantErr(t, "SaveEmailVerification duplicate", b.SaveEmailVerification(ctx, other), storage.ErrAlreadyExists)
		got, err := b.ConsumeEmailVerification(ctx, v.Hash, at(0))
		must(t, "ConsumeEmailVerification", err)
		same(t, "ConsumeEmailVerification", got, v)
	})
	t.Run("RefusesUnhashedKey", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		v := newVerification("link-1", "acct-1")
		v.Hash = []byte("the-token-itself")
		if err := b.SaveEmailVerification(ctx, v); err == nil {
			t.Fatal("SaveEmailVerification accepted a key that is not a SHA-256")
		}
	})
	t.Run("DeleteExpiredRemovesThem", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		dead, live := newVerification("link-1", "acct-1"), newVerification("link-2", "acct-2")
		dead.ExpiresAt = at(time.Hour)
		must(t, "SaveEmailVerification", b.SaveEmailVerification(ctx, dead))
		must(t, "SaveEmailVerification", b.SaveEmailVerification(ctx, live))
		n, err := b.DeleteExpired(ctx, at(2*time.Hour), time.Time{})
		must(t, "DeleteExpired", err)
		if n != 1 {
			t.Fatalf("DeleteExpired removed %d records, want 1", n)
		}
		// Gone even for a caller whose clock says it is still valid.
		_, err = b.ConsumeEmailVerification(ctx, dead.Hash, at(0))
		wantErr(t, "ConsumeEmailVerification of a removed link", err, storage.ErrNotFound)
		_, err = b.ConsumeEmailVerification(ctx, live.Hash, at(2*time.Hour))
		must(t, "ConsumeEmailVerification of a live link", err)
	})
	t.Run("ConsumeExactlyOnce", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		v := newVerification("link-1", "acct-1")
		must(t, "SaveEmailVerification", b.SaveEmailVerification(ctx, v))
		const n = 30
		errs := make([]error, n)
		race(n, func(i int) { _, errs[i] = b.ConsumeEmailVerification(ctx, v.Hash, at(time.Second)) })
		exactlyOneWon(t, "ConsumeEmailVerification", errs, storage.ErrNotFound)
	})
}
