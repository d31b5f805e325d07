package authserver

import (
	"errors"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// TestOwnedClientsFollowTheSharedRules: an owned client is checked by the
// same redirect-URI policy and CIMD-id rule as DCR and CIMD clients, and its
// consent fingerprint is the shared one. The refused cases were accepted by
// the owned lane's former copy of the policy.
func TestOwnedClientsFollowTheSharedRules(t *testing.T) {
	h, _, _, _ := pkjwtHarness(t)
	for name, c := range map[string]storage.Client{
		"upper-case scheme":  {ID: "x", RedirectURIs: []string{"HTTPS://x.example/cb"}},
		"empty https port":   {ID: "x", RedirectURIs: []string{"https://x.example:/cb"}},
		"bad https host":     {ID: "x", RedirectURIs: []string{"https://x!y.example/cb"}},
		"intent scheme":      {ID: "x", RedirectURIs: []string{"intent://x.example/cb"}},
		"over 2000 bytes":    {ID: "x", RedirectURIs: []string{"https://x.example/" + strings.Repeat("a", 2000)}},
		"http URL as the id": {ID: "http://x.example/client", RedirectURIs: []string{"https://x.example/cb"}},
		"CIMD id":            {ID: "https://x.example/client", RedirectURIs: []string{"https://x.example/cb"}},
	} {
		err := h.srv.validateOwnedClient(&c)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		var e *oauth.Error
		if strings.HasPrefix(c.ID, "x") && (!errors.As(err, &e) || e.Code != oauth.CodeInvalidRedirectURI) {
			t.Errorf("%s: %v is not invalid_redirect_uri", name, err)
		}
	}
	c := storage.Client{ID: "x", Name: "X", RedirectURIs: []string{"https://x.example/cb", "cursor://x/cb", "http://127.0.0.1/cb"}, LogoURI: "https://x.example/l.png"}
	if err := h.srv.validateOwnedClient(&c); err != nil {
		t.Fatalf("refused: %v", err)
	}
	if c.Fingerprint != oauth.Fingerprint(storage.Client{Name: "X", RedirectURIs: c.RedirectURIs}) {
		t.Error("an owned client's fingerprint is not the shared one (it must not depend on the logo)")
	}
}
