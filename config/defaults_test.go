package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
)

// Resolve replaces placeholders with the host's replacer, puts the bbolt
// file under the data directory and refuses a secret that is empty once
// replaced; SetDefaults fills what empty fields mean.
func TestResolveAndDefaults(t *testing.T) {
	env := map[string]string{"{env.ISSUER}": "https://auth.example.com/", "{env.SECRET}": "s3cret-s3cret-s3cret"}
	replace := func(s string) string {
		for k, v := range env {
			s = strings.ReplaceAll(s, k, v)
		}
		return s
	}
	a := App{Issuer: "{env.ISSUER}", Clients: []Client{{ID: "svc", Secret: "{env.SECRET}", GrantTypes: []string{"client_credentials"}}}, DCR: &DCR{}}
	if err := a.Resolve(replace, "/data", nil); err != nil {
		t.Fatal(err)
	}
	if a.Issuer != "https://auth.example.com" || a.Clients[0].Secret != "s3cret-s3cret-s3cret" {
		t.Fatalf("not replaced: %q %q", a.Issuer, a.Clients[0].Secret)
	}
	if a.Storage.Backend != "bbolt" || a.Storage.Path != filepath.Join("/data", "mcpauth", "mcpauth.db") || a.Storage.LockTimeout != Duration(5*time.Second) {
		t.Fatalf("storage %+v", a.Storage)
	}
	a.SetDefaults(nil)
	if a.SigningAlgorithm != "ES256" || a.AccessTokenLifetime != Duration(time.Hour) || a.TokenRateBurst != 50 ||
		a.RefreshGrace == nil || *a.RefreshGrace != Duration(authserver.DefaultRefreshGrace) ||
		a.DCR.RateEvery != Duration(6*time.Minute) || a.DCR.ExpireUnused == nil || a.ClientIPv6Prefix != 64 {
		t.Fatalf("defaults %+v %+v", a, *a.DCR)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}

	b := App{Issuer: "https://auth.example.com", Clients: []Client{{ID: "svc", Secret: "{env.UNSET_FOR_THIS_TEST}", Source: "Caddyfile:3"}}}
	err := b.Resolve(func(s string) string { return strings.ReplaceAll(s, "{env.UNSET_FOR_THIS_TEST}", "") }, "/data", nil)
	if err == nil || !strings.HasPrefix(err.Error(), "Caddyfile:3: mcp_auth: client \"svc\": its secret") || !strings.Contains(err.Error(), "UNSET_FOR_THIS_TEST is not set") {
		t.Fatalf("empty secret: %v", err)
	}
	if got := (&App{Source: "Caddyfile:2"}).Positioned(err); got.Error() != err.Error() {
		t.Fatalf("positioned twice: %v", got)
	}
}

// ServerConfig takes the guards' resources from the runtime and builds the
// registration handler only with dcr.
func TestServerConfig(t *testing.T) {
	a := App{Issuer: "https://auth.example.com", Resources: []string{"https://mcp.example.com/mcp"}}
	a.SetDefaults(nil)
	cfg, err := a.ServerConfig(Runtime{Resources: []string{"https://mcp.example.com/mcp", "https://b.example.com/mcp"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Resources.Known) != 2 || cfg.Resources.Default != "" || cfg.Registration != nil || cfg.ClientResolver != nil || cfg.JWKSFetcher == nil {
		t.Fatalf("%+v", cfg.Resources)
	}
	if cfg.TokenRatePerIP != 10 || cfg.TokenBurstPerIP != 50 {
		t.Fatalf("token rate %v/%d", cfg.TokenRatePerIP, cfg.TokenBurstPerIP)
	}
	a.DCR, a.CIMD = &DCR{}, &CIMD{}
	a.SetDefaults(nil)
	st := Storage{Path: filepath.Join(t.TempDir(), "mcpauth.db")}
	if err := st.Resolve(func(s string) string { return s }, ""); err != nil {
		t.Fatal(err)
	}
	store, err := st.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg, err = a.ServerConfig(Runtime{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Resources.Default != "https://mcp.example.com/mcp" || cfg.Registration == nil || cfg.ClientResolver == nil {
		t.Fatalf("%+v", cfg.Resources)
	}
}
