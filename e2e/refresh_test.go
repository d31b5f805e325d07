package e2e

import (
	"strings"
	"testing"
	"time"
)

// refreshPair refreshes rt and returns the new access and refresh tokens,
// failing unless the server answers 200 with both.
func refreshPair(t *testing.T, s *stack, rt, what string) (access, refresh string) {
	t.Helper()
	st, code, body := opsRefresh(t, s, rt)
	if st != 200 {
		t.Fatalf("%s: %d %q, want 200", what, st, code)
	}
	access, _ = body["access_token"].(string)
	refresh, _ = body["refresh_token"].(string)
	if access == "" || refresh == "" || refresh == rt {
		t.Fatalf("%s: no fresh pair in %v", what, body)
	}
	return access, refresh
}

func wantInvalidGrant(t *testing.T, s *stack, rt, what string) {
	t.Helper()
	if st, code, _ := opsRefresh(t, s, rt); st != 400 || code != "invalid_grant" {
		t.Fatalf("%s: %d %q, want 400 invalid_grant", what, st, code)
	}
}

// TestRefreshGrace (requirements 9 and 37) through the built binary: the
// rotated-out refresh token works once within the grace (a client that
// lost the response gets a fresh pair); a second use of it is reuse and
// revokes the family, so the newest refresh token fails with invalid_grant
// and the guard refuses the newest access token.
func TestRefreshGrace(t *testing.T) {
	s := startStack(t, stackOpts{})
	tok := s.login(t, s.oauthConfig("todo:read"))
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	_, r1 := refreshPair(t, s, tok.RefreshToken, "rotation")
	a2, r2 := refreshPair(t, s, tok.RefreshToken, "lost-response retry of the rotated-out token")
	if r2 == r1 {
		t.Fatal("the retry returned the replaced token")
	}
	if got := mcpStatus(t, s, a2); got != 200 {
		t.Fatalf("guard with the retry's access token: %d, want 200", got)
	}
	wantInvalidGrant(t, s, tok.RefreshToken, "second use of the rotated-out token")
	wantInvalidGrant(t, s, r2, "newest refresh token after reuse")
	wantInvalidGrant(t, s, r1, "replaced refresh token after reuse")
	if got := mcpStatus(t, s, a2); got != 401 {
		t.Fatalf("guard with the newest access token after reuse: %d, want 401", got)
	}
	auditShows(t, s, "refresh.reuse")
}

// auditShows waits until the audit trail lists every one of types: the
// authorization server appends its events in background batches.
func auditShows(t *testing.T, s *stack, types ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := opsMustCLI(t, s, "audit", "tail", "--limit", "200")
		missing := ""
		for _, typ := range types {
			if !strings.Contains(out, typ) {
				missing = typ
				break
			}
		}
		if missing == "" {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit tail lacks %s:\n%s", missing, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRefreshGraceStrictAndWindow: with `refresh_grace 0` the rotated-out
// token is reuse at once; with a short grace it is reuse once the window
// has passed. Either way the family ends.
func TestRefreshGraceStrictAndWindow(t *testing.T) {
	for _, c := range []struct {
		name, option string
		wait         time.Duration
	}{
		{"strict", "refresh_grace 0", 0},
		{"window passed", "refresh_grace 1s", 1500 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startStack(t, stackOpts{extraApp: c.option})
			tok := s.login(t, s.oauthConfig("todo:read"))
			a1, r1 := refreshPair(t, s, tok.RefreshToken, "rotation")
			time.Sleep(c.wait)
			wantInvalidGrant(t, s, tok.RefreshToken, "rotated-out token")
			wantInvalidGrant(t, s, r1, "newest refresh token after reuse")
			if got := mcpStatus(t, s, a1); got != 401 {
				t.Fatalf("guard after reuse: %d, want 401", got)
			}
		})
	}
}

// TestSeededPasswordChangeRevokesGrants (requirements 10 and 41): a reload
// whose Caddyfile changes a seeded user's password ends that user's grants:
// the old refresh token fails with invalid_grant, the guard refuses the old
// access token, and the new password signs in.
func TestSeededPasswordChangeRevokesGrants(t *testing.T) {
	s := startStack(t, stackOpts{})
	tok := s.login(t, s.oauthConfig("todo:read"))
	if got := mcpStatus(t, s, tok.AccessToken); got != 200 {
		t.Fatalf("guard before the change: %d", got)
	}
	const newPassword = "a-new-seeded-long-passphrase"
	s.caddy.reload(t, strings.Replace(s.caddyfile(stackOpts{}), alicePassword, newPassword, 1))
	wantInvalidGrant(t, s, tok.RefreshToken, "refresh token after the seeded password changed")
	if got := mcpStatus(t, s, tok.AccessToken); got != 401 {
		t.Fatalf("guard with the old access token: %d, want 401", got)
	}
	fresh := opsLoginAs(t, s, aliceEmail, newPassword)
	if got := mcpStatus(t, s, fresh.AccessToken); got != 200 {
		t.Fatalf("guard after signing in with the new password: %d", got)
	}
	out := auditShows(t, s, "account.password_changed", "subject.revoked")
	if strings.Contains(out, newPassword) || strings.Contains(out, alicePassword) {
		t.Fatal("the audit trail shows a password")
	}
}
