package authserver

import (
	"testing"
	"time"
)

// The server owns the publication window of retired keys: twice the
// longest access-token lifetime it can mint, CIMD policies included (the
// adapter used to compute it from the server's and owned clients' lifetimes
// only, then pass it where New ignored it).
func TestKeyPublishWindowCoversEveryAccessTokenLifetime(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.AccessTokenTTL = 30 * time.Minute
		c.CIMDPolicy.Hosts = map[string]ClientPolicy{"*.example.com": {AccessTokenTTL: 20 * time.Hour}}
	})
	if got := h.srv.Keys().PublishFor(); got != 40*time.Hour {
		t.Fatalf("own key set publishes retired keys for %s, want 40h", got)
	}

	// A key set built before the server (the Caddy app's) is raised, never
	// lowered.
	ks, err := NewKeySet(t.Context(), h.store, KeyConfig{PublishFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.srv.cfg
	cfg.Keys = ks
	cfg.Clients = nil
	cfg.CIMDPolicy = CIMDPolicy{Clients: map[string]ClientPolicy{"https://c.example/m.json": {AccessTokenTTL: 3 * time.Hour}}}
	srv, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if got := ks.PublishFor(); got != 6*time.Hour {
		t.Fatalf("shared key set publishes for %s, want 6h", got)
	}
	ks2, _ := NewKeySet(t.Context(), h.store, KeyConfig{PublishFor: 100 * time.Hour})
	cfg.Keys = ks2
	srv2, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Close() })
	if got := ks2.PublishFor(); got != 100*time.Hour {
		t.Fatalf("a longer configured window was lowered to %s", got)
	}
}
