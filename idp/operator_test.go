package idp

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// The operator's account actions decide their own consequences (they were
// decided in caddymodule/admin.go): disabling an account and ending its
// sessions both revoke its grants, with the reason recorded on the grants
// and one "subject.revoked" event; enabling revokes nothing. A bad email is
// a typed error, not a message to match.
func TestOperatorAccountActionsRevokeGrants(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		act    func(e *env, id string) int
		reason string
	}{
		{"disable", func(e *env, id string) int {
			n, err := e.login.SetAccountDisabled(ctx, id, true)
			mustOK(t, err)
			return n
		}, ReasonAccountDisabled},
		{"revoke sessions", func(e *env, id string) int {
			_, n, err := e.login.RevokeSessions(ctx, id)
			mustOK(t, err)
			return n
		}, ReasonSessionsRevoked},
		{"enable", func(e *env, id string) int {
			n, err := e.login.SetAccountDisabled(ctx, id, false)
			mustOK(t, err)
			return n
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			alice, bob := e.account(aliceEmail).ID, e.account(bobEmail).ID
			now := e.clock.Now()
			for i, sub := range []string{alice, alice, bob} {
				rt := sha256.Sum256([]byte{byte(i)})
				mustOK(t, e.store.CreateGrant(ctx, storage.Grant{ID: "g" + string(rune('0'+i)), ClientID: "app", Subject: sub,
					RefreshHash: rt[:], CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
			}
			want := 0
			if c.reason != "" {
				want = 2
			}
			if n := c.act(e, alice); n != want {
				t.Fatalf("%d grants revoked, want %d", n, want)
			}
			grants, err := e.store.ListGrants(ctx, "", "")
			mustOK(t, err)
			for _, g := range grants {
				revoked := c.reason != "" && g.Subject == alice
				if g.Revoked() != revoked || (revoked && g.RevokedReason != c.reason) {
					t.Fatalf("grant %s of %s: revoked %v (%q), want %v (%q)", g.ID, g.Subject, g.Revoked(), g.RevokedReason, revoked, c.reason)
				}
			}
			evs, err := e.store.ListAudit(ctx, storage.AuditQuery{Type: "subject.revoked", Subject: alice})
			mustOK(t, err)
			if len(evs) != want/2 || (want > 0 && evs[0].Detail["reason"] != c.reason) {
				t.Fatalf("subject.revoked events %+v", evs)
			}
		})
	}
	e := newEnv(t, nil)
	if _, err := e.login.CreateAccount(ctx, "not an address", "", "a long enough passphrase"); !errors.Is(err, ErrNotEmail) {
		t.Fatalf("CreateAccount(bad email) = %v, want ErrNotEmail", err)
	}
}
