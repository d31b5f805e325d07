package config

import "testing"

// JSON configs get the same checks as the Caddyfile.
func TestGuardValidate(t *testing.T) {
	for _, g := range []Guard{{StripCookies: "some"}, {MaxHeaders: -2}, {MaxHeaderBytes: -5}} {
		if err := g.Validate(); err == nil {
			t.Errorf("%+v validated", g)
		}
	}
	for _, g := range []Guard{{}, {StripCookies: "product"}, {StripCookies: "all", MaxHeaders: -1, MaxHeaderBytes: 1 << 20}} {
		if err := g.Validate(); err != nil {
			t.Errorf("%+v: %v", g, err)
		}
	}
}
