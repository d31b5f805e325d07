package storagetest

import (
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// issuer returns an issue callback that counts its calls and makes the
// grant of the code with refresh token refresh.
func issuer(calls *int, refresh string) func(storage.AuthCode) (*storage.Grant, error) {
	return func(c storage.AuthCode) (*storage.Grant, error) {
		*calls++
		return grantFrom(c, refresh), nil
	}
}

func neverIssue(t *testing.T) func(storage.AuthCode) (*storage.Grant, error) {
	return func(storage.AuthCode) (*storage.Grant, error) {
		t.Error("issue called on a refused redemption")
		return nil, errTest
	}
}

func (s *suite) testCodes(t *testing.T) {
	t.Run("RedeemOnceCreatesGrant", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newCode("code-1", "grant-1")
		must(t, "SaveCode", b.SaveCode(ctx, c))
		now := at(10 * time.Second)
		var seen storage.AuthCode
		calls := 0
		got, err := b.RedeemCode(ctx, c.Hash, now, func(in storage.AuthCode) (*storage.Grant, error) {
			calls++
			seen = in
			return grantFrom(in, "refresh-1"), nil
		})
		must(t, "RedeemCode", err)
		if calls != 1 {
			t.Fatalf("issue called %d times, want 1", calls)
		}
		want := c
		want.UsedAt = now
		same(t, "code handed to issue", seen, want)
		same(t, "code returned", got, want)
		g := getGrant(t, b, "grant-1")
		same(t, "grant created", g, *grantFrom(want, "refresh-1"))
		byRefresh, err := b.GrantByRefresh(ctx, Hash("refresh-1"))
		must(t, "GrantByRefresh", err)
		same(t, "GrantByRefresh", byRefresh, g)
	})
	t.Run("SecondRedeemIsCodeUsedWithRecord", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newCode("code-1", "grant-1")
		must(t, "SaveCode", b.SaveCode(ctx, c))
		calls := 0
		_, err := b.RedeemCode(ctx, c.Hash, at(time.Second), issuer(&calls, "refresh-1"))
		must(t, "RedeemCode", err)
		before := getGrant(t, b, "grant-1")
		got, err := b.RedeemCode(ctx, c.Hash, at(2*time.Second), neverIssue(t))
		wantErr(t, "RedeemCode replay", err, storage.ErrCodeUsed)
		want := c
		want.UsedAt = at(time.Second)
		same(t, "record returned with ErrCodeUsed", got, want)
		same(t, "grant after replay", getGrant(t, b, "grant-1"), before)
	})
	t.Run("UsedCodeReportedAfterExpiry", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newCode("code-1", "grant-1")
		must(t, "SaveCode", b.SaveCode(ctx, c))
		calls := 0
		_, err := b.RedeemCode(ctx, c.Hash, at(time.Second), issuer(&calls, "refresh-1"))
		must(t, "RedeemCode", err)
		got, err := b.RedeemCode(ctx, c.Hash, c.ExpiresAt.Add(time.Second), neverIssue(t))
		wantErr(t, "RedeemCode replay after expiry", err, storage.ErrCodeUsed)
		if got.GrantID != "grant-1" {
			t.Fatalf("replay record GrantID = %q, want grant-1", got.GrantID)
		}
	})
	t.Run("UnknownCode", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		_, err := b.RedeemCode(ctx, Hash("nope"), at(0), neverIssue(t))
		wantErr(t, "RedeemCode", err, storage.ErrNotFound)
	})
	t.Run("ExpiredCodeRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newCode("code-1", "grant-1")
		must(t, "SaveCode", b.SaveCode(ctx, c))
		for _, now := range []time.Time{c.ExpiresAt, c.ExpiresAt.Add(time.Hour)} {
			_, err := b.RedeemCode(ctx, c.Hash, now, neverIssue(t))
			wantErr(t, "RedeemCode expired at "+now.String(), err, storage.ErrNotFound)
		}
		// The refusals neither burned the code nor created anything.
		_, err := b.GetGrant(ctx, "grant-1")
		wantErr(t, "GetGrant", err, storage.ErrNotFound)
		calls := 0
		_, err = b.RedeemCode(ctx, c.Hash, c.ExpiresAt.Add(-time.Microsecond), issuer(&calls, "refresh-1"))
		must(t, "RedeemCode before expiry", err)
		if calls != 1 {
			t.Fatalf("issue called %d times, want 1", calls)
		}
	})
	t.Run("IssueErrorBurnsCodeNoGrant", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newCode("code-1", "grant-1")
		must(t, "SaveCode", b.SaveCode(ctx, c))
		_, err := b.RedeemCode(ctx, c.Hash, at(time.Second), func(in storage.AuthCode) (*storage.Grant, error) {
			return grantFrom(in, "refresh-1"), errTest
		})
		wantErr(t, "RedeemCode with failing issue", err, errTest)
		_, err = b.GetGrant(ctx, "grant-1")
		wantErr(t, "GetGrant", err, storage.ErrNotFound)
		_, err = b.GrantByRefresh(ctx, Hash("refresh-1"))
		wantErr(t, "GrantByRefresh", err, storage.ErrNotFound)
		got, err := b.RedeemCode(ctx, c.Hash, at(2*time.Second), neverIssue(t))
		wantErr(t, "RedeemCode after failed issue", err, storage.ErrCodeUsed)
		if !got.UsedAt.Equal(at(time.Second)) {
			t.Fatalf("burned code UsedAt = %v, want %v", got.UsedAt, at(time.Second))
		}
	})
	t.Run("IssueNilGrantBurnsCode", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newCode("code-1", "grant-1")
		must(t, "SaveCode", b.SaveCode(ctx, c))
		_, err := b.RedeemCode(ctx, c.Hash, at(time.Second), func(storage.AuthCode) (*storage.Grant, error) { return nil, nil })
		must(t, "RedeemCode", err)
		_, err = b.GetGrant(ctx, "grant-1")
		wantErr(t, "GetGrant", err, storage.ErrNotFound)
		_, err = b.RedeemCode(ctx, c.Hash, at(2*time.Second), neverIssue(t))
		wantErr(t, "RedeemCode again", err, storage.ErrCodeUsed)
	})
	t.Run("GrantCollisionBurnsCodeKeepsExisting", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		existing := newGrant("grant-1", "client-9", "user-9", "refresh-9")
		must(t, "CreateGrant", b.CreateGrant(ctx, existing))
		c := newCode("code-1", "grant-1")
		must(t, "SaveCode", b.SaveCode(ctx, c))
		calls := 0
		_, err := b.RedeemCode(ctx, c.Hash, at(time.Second), issuer(&calls, "refresh-1"))
		wantErr(t, "RedeemCode onto an existing grant id", err, storage.ErrAlreadyExists)
		same(t, "existing grant", getGrant(t, b, "grant-1"), existing)
		_, err = b.GrantByRefresh(ctx, Hash("refresh-1"))
		wantErr(t, "GrantByRefresh", err, storage.ErrNotFound)
		_, err = b.RedeemCode(ctx, c.Hash, at(2*time.Second), neverIssue(t))
		wantErr(t, "RedeemCode again", err, storage.ErrCodeUsed)
	})
	t.Run("SaveDuplicateRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newCode("code-1", "grant-1")
		must(t, "SaveCode", b.SaveCode(ctx, c))
		other := c
		other.ClientID = "client-evil"
		other.RedirectURI = "https://evil.example/cb"
		wantErr(t, "SaveCode duplicate", b.SaveCode(ctx, other), storage.ErrAlreadyExists)
		got, err := b.RedeemCode(ctx, c.Hash, at(time.Second), func(storage.AuthCode) (*storage.Grant, error) { return nil, nil })
		must(t, "RedeemCode", err)
		if got.ClientID != c.ClientID || got.RedirectURI != c.RedirectURI {
			t.Fatalf("refused SaveCode overwrote the code: %+v", got)
		}
	})
}
