package e2e

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// TestReloadKeepsStoreAndKeys: `caddy reload` with a changed config keeps
// working on the same bbolt file. The file lock timeout is set to an hour,
// so a reload that opened the file a second time (instead of sharing it
// through the usage pool) would hang and fail the reload command's deadline.
// Nothing is lost: the signing key, the accounts and the refresh tokens of
// the old config all work under the new one.
func TestReloadKeepsStoreAndKeys(t *testing.T) {
	s := startStack(t, stackOpts{productName: "Before Reload"})
	conf := s.oauthConfig("todo:read")
	tok := s.login(t, conf)
	kidBefore := jwksKids(t, s)

	for i, name := range []string{"After Reload", "After Second Reload"} {
		s.caddy.reload(t, s.caddyfile(stackOpts{productName: name, extraApp: "access_token_lifetime 30m"}))
		if !strings.Contains(loginPage(t, s), name) {
			t.Fatalf("reload %d: login page does not show the new product name %q", i+1, name)
		}
		if kids := jwksKids(t, s); kids != kidBefore {
			t.Fatalf("reload %d: JWKS changed from %s to %s", i+1, kidBefore, kids)
		}
		// The refresh token issued before the reload still rotates.
		tok.Expiry = time.Now().Add(-time.Minute)
		next, err := conf.TokenSource(s.ctx(), tok).Token()
		if err != nil {
			t.Fatalf("reload %d: refresh with a pre-reload token: %v", i+1, err)
		}
		if code := mcpStatus(t, s, next.AccessToken); code != 200 {
			t.Fatalf("reload %d: guard refused a fresh token: %d", i+1, code)
		}
		tok = next
	}
	// The account survived too: a new login works.
	s.login(t, conf)
	if strings.Contains(s.caddy.logs.String(), "timeout") && strings.Contains(s.caddy.logs.String(), "mcpauth.db") {
		t.Errorf("a lock timeout was logged:\n%s", tail(s.caddy.logs.String(), 3000))
	}
}

func jwksKids(t testing.TB, s *stack) string {
	t.Helper()
	resp, err := s.Client.Get(s.Issuer + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %v %+v", err, set)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return strings.Join(kids, ",")
}

func loginPage(t testing.TB, s *stack) string {
	t.Helper()
	resp, err := s.Client.Get(s.Issuer + "/login")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
