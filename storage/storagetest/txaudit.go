package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// testTxAudit: the writes that record a security decision append the
// events of a storage.TxAudit in their own transaction, exactly when they
// commit the change (requirement: an acknowledged change always has its
// audit record, even after a crash; a refused call leaves none).
func (s *suite) testTxAudit(t *testing.T) {
	b := s.backend(t)
	// audited returns a ctx whose writes record one event of type typ,
	// with the outcome they were committed with in its detail.
	audited := func(typ string) context.Context {
		return storage.WithTxAudit(t.Context(), func(outcome error, g *storage.Grant) []storage.AuditEvent {
			o := "ok"
			switch {
			case errors.Is(outcome, storage.ErrRefreshReused):
				o = "reused"
			case outcome != nil:
				o = outcome.Error()
			}
			if g != nil {
				o += ":" + g.ID
			}
			return []storage.AuditEvent{{Time: at(time.Hour), Type: typ, Outcome: o, Subject: "user-1", ClientID: "client-1"}}
		})
	}
	logged := func(step string, want ...string) {
		t.Helper()
		evs, err := b.ListAudit(t.Context(), storage.AuditQuery{Limit: 1000})
		must(t, "ListAudit", err)
		got := make([]string, 0, len(evs))
		for _, e := range slices.Backward(evs) {
			got = append(got, e.Type+"/"+e.Outcome)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: audit log %v, want %v", step, got, want)
		}
	}
	ctx := t.Context()

	// A code redeemed into a grant: the event commits with it.
	must(t, "SaveCode", b.SaveCode(ctx, newCode("code-a", "grant-a")))
	_, err := b.RedeemCode(audited("token.issued"), Hash("code-a"), at(time.Second), func(c storage.AuthCode) (*storage.Grant, error) {
		return grantFrom(c, "rt-a0"), nil
	})
	must(t, "RedeemCode", err)
	logged("after a redemption", "token.issued/ok:grant-a")
	// A replayed code, and a redemption refused by issue: no event.
	_, err = b.RedeemCode(audited("token.issued"), Hash("code-a"), at(2*time.Second), func(c storage.AuthCode) (*storage.Grant, error) {
		return grantFrom(c, "rt-ax"), nil
	})
	wantErr(t, "RedeemCode replay", err, storage.ErrCodeUsed)
	must(t, "SaveCode", b.SaveCode(ctx, newCode("code-b", "grant-b")))
	refused := errors.New("pkce mismatch")
	_, err = b.RedeemCode(audited("token.issued"), Hash("code-b"), at(time.Second), func(storage.AuthCode) (*storage.Grant, error) {
		return nil, refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("RedeemCode refused by issue: %v", err)
	}
	logged("after refused redemptions", "token.issued/ok:grant-a")

	// A rotation, then reuse of the rotated-out token (past the grace): the
	// family's revocation commits with its event. Unknown tokens: none.
	_, err = b.RotateRefresh(audited("token.issued"), rotation("rt-a0", "rt-a1", at(time.Minute)))
	must(t, "RotateRefresh", err)
	_, err = b.RotateRefresh(audited("token.issued"), rotation("nope", "rt-n1", at(time.Minute)))
	wantErr(t, "RotateRefresh unknown", err, storage.ErrNotFound)
	_, err = b.RotateRefresh(audited("refresh.reuse"), rotation("rt-a0", "rt-a2", at(time.Hour)))
	wantErr(t, "RotateRefresh reuse", err, storage.ErrRefreshReused)
	if !getGrant(t, b, "grant-a").Revoked() {
		t.Fatal("reuse did not revoke the family")
	}
	_, err = b.RotateRefresh(audited("token.issued"), rotation("rt-a1", "rt-a3", at(time.Hour)))
	wantErr(t, "RotateRefresh of a revoked family", err, storage.ErrGrantRevoked)
	logged("after rotations", "token.issued/ok:grant-a", "token.issued/ok:grant-a", "refresh.reuse/reused:grant-a")

	// Revoking a grant; revoking it again changes nothing and logs nothing.
	must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-c", "client-1", "user-1", "rt-c")))
	must(t, "RevokeGrant", b.RevokeGrant(audited("grant.revoked"), "grant-c", "code_replay", at(time.Hour)))
	must(t, "RevokeGrant again", b.RevokeGrant(audited("grant.revoked"), "grant-c", "code_replay", at(time.Hour)))
	wantErr(t, "RevokeGrant unknown", b.RevokeGrant(audited("grant.revoked"), "nope", "x", at(time.Hour)), storage.ErrNotFound)

	// A client disabled; an unknown one; a touch (never audited).
	must(t, "CreateClient", b.CreateClient(ctx, newClient("client-1")))
	must(t, "SetClientDisabled", b.SetClientDisabled(audited("client.disabled"), "client-1", true, at(time.Hour)))
	wantErr(t, "SetClientDisabled unknown", b.SetClientDisabled(audited("client.disabled"), "nope", true, at(time.Hour)), storage.ErrNotFound)
	must(t, "TouchClient", b.TouchClient(audited("client.touched"), "client-1", at(48*time.Hour)))

	// A consent and a login's session.
	must(t, "PutConsent", b.PutConsent(audited("consent.granted"), newConsent("user-1", "client-1")))
	must(t, "CreateAccount", b.CreateAccount(ctx, newAccount("user-1", "u1@example.com")))
	must(t, "CreateSession", b.CreateSession(audited("login.success"), newSession("sess-1", "user-1")))
	wantErr(t, "CreateSession taken", b.CreateSession(audited("login.success"), newSession("sess-1", "user-1")), storage.ErrAlreadyExists)

	// Writes that do not document TxAudit ignore it.
	must(t, "SaveCode", b.SaveCode(audited("code.saved"), newCode("code-c", "grant-x")))
	must(t, "PutTicket", b.PutTicket(audited("ticket.put"), newTicket("k", "t1")))
	logged("in the end", "token.issued/ok:grant-a", "token.issued/ok:grant-a", "refresh.reuse/reused:grant-a", "grant.revoked/ok",
		"client.disabled/ok", "consent.granted/ok", "login.success/ok")
}
