package caddymodule

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpauth/caddy-mcpauth/config"
)

// An {env.*} seeded password or client secret whose variable is unset is
// refused at provision, naming the Caddyfile line and the variable, before
// the store is opened (today a user without a password and a client with an
// empty secret were created silently).
func TestProvisionRefusesUnsetSecrets(t *testing.T) {
	os.Unsetenv("MCPAUTH_TEST_UNSET_PW")
	for _, tc := range []struct {
		name string
		mod  func(*App)
		want []string
	}{
		{"seeded password", func(a *App) {
			a.Login.Users = []UserConfig{{Email: "alice@example.com", Password: "{env.MCPAUTH_TEST_UNSET_PW}", Source: "Caddyfile:7"}}
		}, []string{"Caddyfile:7: mcp_auth: login user alice@example.com its password", "{env.MCPAUTH_TEST_UNSET_PW} is empty", "MCPAUTH_TEST_UNSET_PW is not set", "set it before starting Caddy"}},
		{"client secret", func(a *App) {
			a.Clients = []ClientConfig{{ID: "svc", RedirectURIs: []string{"https://svc.example/cb"}, Secret: "{env.MCPAUTH_TEST_UNSET_PW}", Source: "Caddyfile:12"}}
		}, []string{`Caddyfile:12: mcp_auth: client "svc": its secret {env.MCPAUTH_TEST_UNSET_PW} is empty`, "MCPAUTH_TEST_UNSET_PW is not set", "remove `secret`"}},
		{"no password at all (JSON)", func(a *App) {
			a.Login.Users = []UserConfig{{Email: "bob@example.com"}}
		}, []string{"mcp_auth: login user bob@example.com has no password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbPath := filepath.Join(t.TempDir(), "mcpauth.db")
			a := &App{App: config.App{Issuer: testIssuer, Storage: StorageConfig{Path: dbPath}}}
			tc.mod(a)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := a.Provision(ctx)
			defer a.Cleanup()
			if err == nil {
				t.Fatal("provisioned")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n  does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "Caddyfile:") && tc.name != "no password at all (JSON)" {
				t.Errorf("error does not lead with the Caddyfile position: %q", err)
			}
			if _, err := os.Stat(dbPath); !os.IsNotExist(err) {
				t.Errorf("the store was opened before the refusal: %v", err)
			}
		})
	}
	// Set, the same config provisions.
	t.Setenv("MCPAUTH_TEST_UNSET_PW", "a-long-seeded-password")
	a := &App{App: config.App{Issuer: testIssuer, Storage: StorageConfig{Path: filepath.Join(t.TempDir(), "mcpauth.db")},
		Login: LoginConfig{Users: []UserConfig{{Email: "alice@example.com", Password: "{env.MCPAUTH_TEST_UNSET_PW}"}}}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := a.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	_ = a.Cleanup()
}

// App-level configuration errors (found at Validate or Provision) name the
// Caddyfile line of the mcp_auth block; errors of a client or user keep
// their own line and are not prefixed twice.
func TestAppErrorsNameTheirLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		app  App
		run  func(a *App) error
		want string
	}{
		{"issuer with a trailing slash", App{App: config.App{Issuer: "https://auth.example.com/x/", Source: "Caddyfile:2"}},
			func(a *App) error { return a.Validate() }, "Caddyfile:2: mcp_auth: "},
		{"prefix out of range", App{App: config.App{Issuer: testIssuer, ClientIPv4Prefix: 40, Source: "Caddyfile:2"}},
			func(a *App) error { return a.Validate() }, "Caddyfile:2: mcp_auth: client_ipv4_prefix 40"},
		{"a client's own line wins", App{App: config.App{Issuer: testIssuer, Source: "Caddyfile:2",
			Clients: []ClientConfig{{ID: "svc", RedirectURIs: []string{"https://svc.example/cb"}, Secret: "{env.MCPAUTH_TEST_UNSET_PW}", Source: "Caddyfile:12"}}}},
			func(a *App) error {
				a.Storage = StorageConfig{Path: filepath.Join(t.TempDir(), "mcpauth.db")}
				ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
				defer cancel()
				defer a.Cleanup()
				return a.Provision(ctx)
			}, "Caddyfile:12: mcp_auth: client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Unsetenv("MCPAUTH_TEST_UNSET_PW")
			a := tc.app
			err := tc.run(&a)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Count(err.Error(), "Caddyfile:") != 1 {
				t.Fatalf("error %v, want it to start with %q and name one line", err, tc.want)
			}
		})
	}
}
