package discovery

import "testing"

func TestPaths(t *testing.T) {
	cases := []struct {
		path                string
		root, prm, appended bool
	}{
		{"/.well-known/oauth-authorization-server", true, false, false},
		{"/.well-known/oauth-authorization-server/mcp", true, false, false},
		{"/.well-known/oauth-authorization-serverx", false, false, false},
		{"/.well-known/openid-configuration", true, false, false},
		{"/.well-known/oauth-protected-resource", true, true, false},
		{"/.well-known/oauth-protected-resource/notes", true, true, false},
		{"/.well-known/oauth-protected-resourcex", false, false, false},
		{"/x/.well-known/openid-configuration", false, false, true},
		{"/x/.WELL-KNOWN/OpenID-Configuration", false, false, true},
		{"/x/.well-known/oauth-protected-resource/mcp", false, false, true},
		{"/x/.well-known/openid-configurationx", false, false, false},
		{"/mcp", false, false, false},
		{"/.well-known/security.txt", false, false, false},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			if got := Root(c.path); got != c.root {
				t.Errorf("Root = %v", got)
			}
			if got := PRMFamily(c.path); got != c.prm {
				t.Errorf("PRMFamily = %v", got)
			}
			if got := Appended(c.path); got != c.appended {
				t.Errorf("Appended = %v", got)
			}
		})
	}
}
