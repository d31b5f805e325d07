package storagetest

import (
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// testCallerClock: backends decide expiry with the time they are given,
// never with their own clock. The records here expired long ago by the
// real clock but not by the time passed in, and the Get* calls (which take
// no time) return records as stored.
func (s *suite) testCallerClock(t *testing.T) {
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	t.Run("TimedCallsUseTheGivenTime", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newCode("code-old", "grant-old")
		c.CreatedAt, c.ExpiresAt = past, past.Add(time.Minute)
		must(t, "SaveCode", b.SaveCode(ctx, c))
		calls := 0
		_, err := b.RedeemCode(ctx, c.Hash, past.Add(time.Second), func(in storage.AuthCode) (*storage.Grant, error) {
			calls++
			g := grantFrom(in, "r0")
			g.RefreshExpiresAt, g.ExpiresAt = past.Add(time.Hour), past.Add(2*time.Hour)
			return g, nil
		})
		must(t, "RedeemCode", err)
		_, err = b.RotateRefresh(ctx, rotation("r0", "r1", past.Add(time.Minute)))
		must(t, "RotateRefresh", err)
		tk := newTicket("k", "t-old")
		tk.ExpiresAt = past.Add(time.Minute)
		must(t, "PutTicket", b.PutTicket(ctx, tk))
		_, err = b.TakeTicket(ctx, "k", tk.Hash, past)
		must(t, "TakeTicket", err)
		n, err := b.DeleteExpired(ctx, past, time.Time{})
		must(t, "DeleteExpired", err)
		if n != 0 {
			t.Fatalf("DeleteExpired at %v removed %d records that expire later", past, n)
		}
	})
	t.Run("GetReturnsExpiredAsStored", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-old", "client-1", "alice", "old")
		g.CreatedAt, g.RefreshExpiresAt, g.ExpiresAt = past, past.Add(time.Hour), past.Add(2*time.Hour)
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		same(t, "GetGrant", getGrant(t, b, g.ID), g)
		sess := newSession("sid-old", "acct-1")
		sess.CreatedAt, sess.LastSeenAt, sess.ExpiresAt = past, past, past.Add(time.Hour)
		must(t, "CreateSession", b.CreateSession(ctx, sess))
		gotS, err := b.GetSession(ctx, sess.Hash)
		must(t, "GetSession", err)
		same(t, "GetSession", gotS, sess)
		co := newConsent("alice", "client-1")
		co.GrantedAt, co.ExpiresAt = past, past.Add(time.Hour)
		must(t, "PutConsent", b.PutConsent(ctx, co))
		gotC, err := b.GetConsent(ctx, "alice", "client-1")
		must(t, "GetConsent", err)
		same(t, "GetConsent", gotC, co)
	})
}
