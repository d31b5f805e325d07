package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestMultiInstanceKeyPrePublication rotates the signing key on instance B
// (keys rotate, not --now) and checks, every few seconds from before the
// rotation until after the new key signs, that every token minted by
// either instance names a key both instances publish, and passes both
// in-process guards and a guard-only process (its own caddy, remote JWKS
// discovered from the issuer, A's origin). Before pre-publication B signed
// with the new key at once while A's JWKS lacked it until A's next reload
// and the guard-only verifier refused B's tokens.
func TestMultiInstanceKeyPrePublication(t *testing.T) {
	// The window outlasts the guard-only verifier's unknown-kid refetch
	// limit (1 min) as well as the instances' reload (1s) and the JWKS
	// max-age (window - 2s): the default window (7m) does too.
	const window = 65 * time.Second
	p := startPair(t, "key_reload 1s", fmt.Sprintf("key_prepublish %ds", int(window/time.Second)))
	b := newBrowser(t, p.Client, "http://127.0.0.1:5555/")

	// The guard-only process trusts A's internal CA (its issuer's origin).
	root := filepath.Join(t.TempDir(), "issuer-root.crt")
	if err := os.WriteFile(root, p.A.rootPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	gport := freePort(t)
	guardfile := fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
	persist_config off
}

http://127.0.0.1:%[1]d {
	mcp_protect /mcp* {
		issuer %[2]s
		resource %[3]s
		scopes todo:read
	}
	reverse_proxy /mcp* %[4]s
}
`, gport, p.Issuer, p.MCPURL, p.todoAddr)
	startCaddy(t, t.TempDir(), guardfile, "SSL_CERT_FILE="+root)
	guardOnly := &instance{name: "guard-only", base: fmt.Sprintf("http://127.0.0.1:%d", gport)}

	mint := func(at *instance) string {
		t.Helper()
		code, verifier := p.code(t, b)
		tok := p.exchange(t, at.base, code, verifier)
		if tok.status != 200 {
			t.Fatalf("exchange at %s: %d %s", at.name, tok.status, tok.errCode)
		}
		return tok.access
	}
	check := func(phase string, toks map[string]string) {
		t.Helper()
		ka, kb := p.kids(t, p.A), p.kids(t, p.B)
		for name, tok := range toks {
			kid := tokenKid(t, tok)
			if !slices.Contains(ka, kid) || !slices.Contains(kb, kid) {
				t.Fatalf("%s: %s's token names %s; JWKS A %v, B %v", phase, name, kid, ka, kb)
			}
			for _, in := range []*instance{p.A, p.B, guardOnly} {
				if st := p.mcp(t, in, tok); st != 200 {
					t.Fatalf("%s: %s's token (kid %s) at %s's guard: %d, want 200", phase, name, kid, in.name, st)
				}
			}
		}
	}
	first := map[string]string{"A": mint(p.A), "B": mint(p.B)}
	check("before rotation", first)
	oldKid := tokenKid(t, first["A"])

	adminPost(t, p.B, "/mcp_auth/keys/rotate")
	rotated := time.Now()
	var newKid string
	for _, k := range p.kids(t, p.B) {
		if k != oldKid {
			newKid = k
		}
	}
	if newKid == "" {
		t.Fatalf("B does not publish a new key after the rotation: %v", p.kids(t, p.B))
	}
	var switched time.Time
	rounds := 0
	for time.Since(rotated) < window+15*time.Second {
		toks := map[string]string{"A": mint(p.A), "B": mint(p.B)}
		check(fmt.Sprintf("%s after rotation", time.Since(rotated).Round(time.Second)), toks)
		for name, tok := range toks {
			switch kid := tokenKid(t, tok); {
			case kid == newKid && switched.IsZero():
				switched = time.Now()
				t.Logf("%s first signs with the new key %s after rotation", name, time.Since(rotated).Round(100*time.Millisecond))
			case kid != newKid && kid != oldKid:
				t.Fatalf("%s signs with %s, neither the old nor the new key", name, kid)
			case kid == newKid && time.Since(rotated) < window-time.Second:
				t.Fatalf("%s signs with the new key %s after rotation, before the window (%s)", name, time.Since(rotated), window)
			}
		}
		// Tokens minted before the rotation still pass everywhere.
		check("first tokens", first)
		rounds++
		time.Sleep(2 * time.Second)
	}
	last := map[string]string{"A": mint(p.A), "B": mint(p.B)}
	check("after the window", last)
	for name, tok := range last {
		if kid := tokenKid(t, tok); kid != newKid {
			t.Fatalf("%s still signs with %s after the window, want %s", name, kid, newKid)
		}
	}
	t.Logf("%d rounds; every token of A and B passed A, B and the guard-only verifier; the new key signed %s after the rotation",
		rounds, switched.Sub(rotated).Round(100*time.Millisecond))
}
