package resourceguard_test

import (
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/oidc"
	"github.com/mcpauth/caddy-mcpauth/idp/saml"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// Every cookie the hosted login sets, in its https (__Host-) and loopback
// http spellings, is one the guard strips (requirement 39).
func TestIdPCookiesAreProductCookies(t *testing.T) {
	for _, name := range []string{idp.SessionCookie, idp.CSRFCookie, "__Host-" + oidc.CookiePrefix + "google", "__Host-" + saml.CookiePrefix + "okta"} {
		for _, n := range []string{name, strings.TrimPrefix(name, "__Host-")} {
			if !resourceguard.IsProductCookie(n) {
				t.Errorf("cookie %q set by the hosted login is not stripped by the guard", n)
			}
		}
	}
}
