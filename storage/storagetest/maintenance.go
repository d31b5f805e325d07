package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (s *suite) testMaintenance(t *testing.T) {
	t.Run("DeleteExpiredRemovesOnlyExpired", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		now := at(10 * time.Minute)

		// Codes: expired unused, expired at exactly now, expired used, live.
		cExpired, cBoundary, cUsed, cLive := newCode("c-exp", "g-c1"), newCode("c-bnd", "g-c2"), newCode("c-used", "g-c3"), newCode("c-live", "g-c4")
		cExpired.ExpiresAt, cBoundary.ExpiresAt, cUsed.ExpiresAt, cLive.ExpiresAt = at(time.Minute), now, at(5*time.Minute), at(time.Hour)
		for _, c := range []storage.AuthCode{cExpired, cBoundary, cUsed, cLive} {
			must(t, "SaveCode", b.SaveCode(ctx, c))
		}
		_, err := b.RedeemCode(ctx, cUsed.Hash, at(time.Second), func(storage.AuthCode) (*storage.Grant, error) { return nil, nil })
		must(t, "RedeemCode", err)

		// Grants: expired (with a rotated family), live revoked, never-expiring.
		gExpired := newGrant("g-exp", "client-1", "alice", "e0")
		gExpired.ExpiresAt = at(5 * time.Minute)
		gRevoked := newGrant("g-rev", "client-1", "alice", "v0")
		gForever := newGrant("g-forever", "client-1", "alice", "f0")
		gForever.ExpiresAt = time.Time{}
		for _, g := range []storage.Grant{gExpired, gRevoked, gForever} {
			must(t, "CreateGrant", b.CreateGrant(ctx, g))
		}
		_, err = b.RotateRefresh(ctx, rotation("e0", "e1", at(time.Minute)))
		must(t, "RotateRefresh", err)
		must(t, "RevokeGrant", b.RevokeGrant(ctx, "g-rev", "x", at(time.Minute)))

		// Sessions, tickets, consents.
		sExpired, sLive := newSession("s-exp", "acct-1"), newSession("s-live", "acct-1")
		sExpired.ExpiresAt = at(9 * time.Minute)
		must(t, "CreateSession", b.CreateSession(ctx, sExpired))
		must(t, "CreateSession", b.CreateSession(ctx, sLive))
		tExpired, tLive := newTicket("k", "t-exp"), newTicket("k", "t-live")
		tExpired.ExpiresAt, tLive.ExpiresAt = at(time.Minute), at(time.Hour)
		must(t, "PutTicket", b.PutTicket(ctx, tExpired))
		must(t, "PutTicket", b.PutTicket(ctx, tLive))
		coExpired, coLive, coForever := newConsent("alice", "c1"), newConsent("alice", "c2"), newConsent("alice", "c3")
		coExpired.ExpiresAt, coForever.ExpiresAt = now, time.Time{}
		for _, c := range []storage.Consent{coExpired, coLive, coForever} {
			must(t, "PutConsent", b.PutConsent(ctx, c))
		}

		// Audit: only the event strictly before auditBefore goes.
		must(t, "AppendAudit", b.AppendAudit(ctx,
			event("old", "", "", at(-2*time.Hour)), event("edge", "", "", at(-time.Hour)), event("new", "", "", at(0))))

		n, err := b.DeleteExpired(ctx, now, at(-time.Hour))
		must(t, "DeleteExpired", err)
		if want := 3 + 1 + 1 + 1 + 1 + 1; n != want { // codes, grant, session, ticket, consent, audit
			t.Fatalf("DeleteExpired = %d, want %d", n, want)
		}

		for _, c := range []storage.AuthCode{cExpired, cBoundary, cUsed} {
			_, err := b.RedeemCode(ctx, c.Hash, at(0), neverIssue(t))
			wantErr(t, "RedeemCode of a deleted code", err, storage.ErrNotFound)
		}
		_, err = b.RedeemCode(ctx, cLive.Hash, now, func(storage.AuthCode) (*storage.Grant, error) { return nil, nil })
		must(t, "RedeemCode live", err)

		_, err = b.GetGrant(ctx, "g-exp")
		wantErr(t, "GetGrant expired", err, storage.ErrNotFound)
		for _, tok := range []string{"e0", "e1"} {
			_, err = b.GrantByRefresh(ctx, Hash(tok))
			wantErr(t, "GrantByRefresh of the deleted family "+tok, err, storage.ErrNotFound)
		}
		list, err := b.ListGrants(ctx, "client-1", "")
		must(t, "ListGrants", err)
		if len(list) != 2 {
			t.Fatalf("ListGrants after DeleteExpired = %d grants, want 2", len(list))
		}
		for _, id := range []string{"g-rev", "g-forever"} {
			getGrant(t, b, id)
		}
		_, err = b.GrantByRefresh(ctx, Hash("v0"))
		must(t, "GrantByRefresh of a kept revoked grant", err)

		_, err = b.GetSession(ctx, sExpired.Hash)
		wantErr(t, "GetSession expired", err, storage.ErrNotFound)
		_, err = b.GetSession(ctx, sLive.Hash)
		must(t, "GetSession live", err)
		if n, err := b.DeleteAccountSessions(ctx, "acct-1"); err != nil || n != 1 {
			t.Fatalf("DeleteAccountSessions after DeleteExpired = %d, %v; want 1 (the index must drop expired sessions)", n, err)
		}

		_, err = b.TakeTicket(ctx, "k", tExpired.Hash, at(0))
		wantErr(t, "TakeTicket deleted", err, storage.ErrNotFound)
		_, err = b.TakeTicket(ctx, "k", tLive.Hash, now)
		must(t, "TakeTicket live", err)

		_, err = b.GetConsent(ctx, "alice", "c1")
		wantErr(t, "GetConsent expired", err, storage.ErrNotFound)
		for _, c := range []string{"c2", "c3"} {
			_, err = b.GetConsent(ctx, "alice", c)
			must(t, "GetConsent kept "+c, err)
		}

		evs, err := b.ListAudit(ctx, storage.AuditQuery{})
		must(t, "ListAudit", err)
		same(t, "audit kept", types(evs), []string{"new", "edge"})

		n, err = b.DeleteExpired(ctx, now, at(-time.Hour))
		must(t, "DeleteExpired again", err)
		if n != 0 {
			t.Fatalf("DeleteExpired again = %d, want 0", n)
		}
	})
	t.Run("ZeroAuditBeforeKeepsAudit", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "AppendAudit", b.AppendAudit(ctx, event("old", "", "", at(-24*time.Hour))))
		n, err := b.DeleteExpired(ctx, at(0), time.Time{})
		must(t, "DeleteExpired", err)
		if n != 0 {
			t.Fatalf("DeleteExpired = %d, want 0", n)
		}
		evs, err := b.ListAudit(ctx, storage.AuditQuery{})
		must(t, "ListAudit", err)
		if len(evs) != 1 {
			t.Fatalf("audit events = %d, want 1", len(evs))
		}
	})
}

func (s *suite) testContext(t *testing.T) {
	t.Run("CanceledWriteRefusedUnchanged", func(t *testing.T) {
		b := s.backend(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := b.CreateClient(ctx, newClient("client-1"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("CreateClient with a canceled context: %v, want context.Canceled", err)
		}
		_, err = b.GetClient(t.Context(), "client-1")
		wantErr(t, "GetClient", err, storage.ErrNotFound)
	})
}
