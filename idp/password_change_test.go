package idp

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/idp/password"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Requirements 10 and 41: whatever changes a password (the operator through
// SetPassword, i.e. the admin API and the CLI, or a seeded account whose
// configured password changed at provision/reload) revokes the account's
// grants, so their refresh tokens stop working and the guard refuses their
// access tokens ("sid"). Other accounts' grants are untouched, and a reseed
// with the same password changes nothing.
func TestPasswordChangeRevokesGrants(t *testing.T) {
	ctx := context.Background()
	reseed := func(e *env, s SeedAccount) {
		t.Helper()
		cfg := e.login.cfg
		cfg.SeedAccounts = []SeedAccount{s}
		l, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.login = l
	}
	otherHash, err := password.Default().Hash("a configured hash passphrase")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		change  func(e *env, aliceID string)
		revoked bool
	}{
		{"operator SetPassword", func(e *env, id string) {
			n, err := e.login.SetPassword(ctx, id, "a brand new passphrase")
			if err != nil || n != 2 {
				t.Fatalf("SetPassword = %d, %v; want 2 grants revoked", n, err)
			}
		}, true},
		{"seeded password changed", func(e *env, _ string) {
			reseed(e, SeedAccount{Email: aliceEmail, Password: "a changed passphrase"})
		}, true},
		{"seeded password hash changed", func(e *env, _ string) {
			reseed(e, SeedAccount{Email: aliceEmail, PasswordHash: otherHash})
		}, true},
		{"seeded password unchanged", func(e *env, _ string) {
			reseed(e, SeedAccount{Email: aliceEmail, Name: "Alice Liddell", Password: alicePW})
		}, false},
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
			e.clock.Advance(time.Second)
			c.change(e, alice)
			grants, err := e.store.ListGrants(ctx, "", "")
			mustOK(t, err)
			for _, g := range grants {
				want := c.revoked && g.Subject == alice
				if g.Revoked() != want {
					t.Fatalf("grant %s of %s: revoked %v, want %v", g.ID, g.Subject, g.Revoked(), want)
				}
				if want && g.RevokedReason != "password_changed" {
					t.Fatalf("grant %s revoked for %q", g.ID, g.RevokedReason)
				}
			}
			evs, err := e.store.ListAudit(ctx, storage.AuditQuery{Type: "subject.revoked", Subject: alice})
			mustOK(t, err)
			if c.revoked && (len(evs) != 1 || evs[0].Detail["grants"] != "2" || evs[0].Detail["reason"] != "password_changed") {
				t.Fatalf("subject.revoked events: %+v", evs)
			}
		})
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
