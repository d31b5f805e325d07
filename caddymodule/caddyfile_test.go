package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the golden JSON files")

func adapt(t *testing.T, src string) ([]byte, error) {
	t.Helper()
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, _, err := adapter.Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// TestCaddyfileGolden adapts every testdata/golden/*.caddyfile and compares
// the JSON with the .json beside it (go test -run Golden -update rewrites).
func TestCaddyfileGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.caddyfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".caddyfile")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := adapt(t, string(src))
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			golden := strings.TrimSuffix(f, ".caddyfile") + ".json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("adapted JSON differs from %s:\n%s", golden, got)
			}
		})
	}
}

// refresh_grace 0 (strict rotation) must survive adaptation as an explicit
// zero, not be dropped as "unset" (which means the 60s default).
func TestCaddyfileRefreshGraceZero(t *testing.T) {
	out, err := adapt(t, "{\n mcp_auth {\n  issuer https://auth.example.com\n  refresh_grace 0\n }\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"refresh_grace": 0`) {
		t.Fatalf("refresh_grace 0 lost in adaptation:\n%s", out)
	}
}

// TestCaddyfileErrors checks that mistakes are reported with file:line.
func TestCaddyfileErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"unknown option", "{\n mcp_auth {\n  issuer https://a.example\n  nonsense 1\n }\n}\n", `unknown mcp_auth option "nonsense"`},
		{"bad storage", "{\n mcp_auth {\n  storage redis x\n }\n}\n", `unknown storage backend "redis"`},
		{"postgres without dsn", "{\n mcp_auth {\n  storage postgres\n }\n}\n", "needs a connection string"},
		{"bad duration", "{\n mcp_auth {\n  access_token_lifetime soon\n }\n}\n", "access_token_lifetime"},
		{"refresh grace args", "{\n mcp_auth {\n  refresh_grace\n }\n}\n", "wrong argument count"},
		{"refresh grace duration", "{\n mcp_auth {\n  refresh_grace soon\n }\n}\n", "refresh_grace"},
		{"bad signup", "{\n mcp_auth {\n  login {\n   signup maybe\n  }\n }\n}\n", `signup "maybe"`},
		{"signup domains empty", "{\n mcp_auth {\n  login {\n   signup domains\n  }\n }\n}\n", "at least one domain"},
		{"smtp without from", "{\n mcp_auth {\n  login {\n   smtp {\n    host smtp.example.com\n   }\n  }\n }\n}\n", "smtp needs host and from"},
		{"smtp bad tls", "{\n mcp_auth {\n  login {\n   smtp {\n    tls maybe\n   }\n  }\n }\n}\n", `tls: "maybe": want starttls, tls or none`},
		{"smtp bad port", "{\n mcp_auth {\n  login {\n   smtp {\n    port 99999\n   }\n  }\n }\n}\n", `smtp port "99999"`},
		{"smtp unknown option", "{\n mcp_auth {\n  login {\n   smtp {\n    relay x\n   }\n  }\n }\n}\n", `unknown smtp option "relay"`},
		{"user args", "{\n mcp_auth {\n  login {\n   user a@b.c\n  }\n }\n}\n", "user <email> <password>"},
		{"client without id", "{\n mcp_auth {\n  client {\n  }\n }\n}\n", "client needs an id"},
		{"client unknown", "{\n mcp_auth {\n  client app {\n   colour red\n  }\n }\n}\n", `unknown client option "colour"`},
		{"server handler args", "example.com {\n mcp_auth_server extra\n}\n", "wrong argument count"},
		{"guard unknown", "example.com {\n mcp_protect /mcp* {\n  bogus\n }\n}\n", `unknown mcp_protect option "bogus"`},
		{"guard step_up", "example.com {\n mcp_protect /mcp* {\n  step_up maybe\n }\n}\n", `step_up: "maybe": want challenge or tool_error`},
		{"guard tool_snapshot arg", "example.com {\n mcp_protect /mcp* {\n  tool_snapshot yes\n }\n}\n", `wrong argument count`},
		{"guard cache size", "example.com {\n mcp_protect {\n  cache_size -1\n }\n}\n", "cache_size"},
		{"guard identity header", "example.com {\n mcp_protect {\n  identity_headers {\n   color X-C\n  }\n }\n}\n", `unknown identity header "color"`},
		{"guard strip_cookies", "example.com {\n mcp_protect {\n  strip_cookies some\n }\n}\n", `strip_cookies: "some"`},
		{"dpop symmetric alg", "{\n mcp_auth {\n  dpop {\n   algorithms HS256\n  }\n }\n}\n", `algorithm "HS256" is not accepted`},
		{"dpop unknown", "{\n mcp_auth {\n  dpop {\n   bind_everything\n  }\n }\n}\n", `unknown dpop option "bind_everything"`},
		{"dpop args", "{\n mcp_auth {\n  dpop on\n }\n}\n", "wrong argument count"},
		{"guard require_dpop args", "example.com {\n mcp_protect {\n  require_dpop yes\n }\n}\n", "wrong argument count"},
		{"guard max_headers", "example.com {\n mcp_protect {\n  max_headers 0\n }\n}\n", "max_headers"},
		{"guard max_header_bytes", "example.com {\n mcp_protect {\n  max_header_bytes lots\n }\n}\n", "max_header_bytes"},
		{"cimd policy", "{\n mcp_auth {\n  cimd {\n   policy sometimes\n  }\n }\n}\n", `policy: "sometimes": want trusted or any`},
		{"cimd unknown", "{\n mcp_auth {\n  cimd {\n   fetch_everything\n  }\n }\n}\n", `unknown cimd option "fetch_everything"`},
		{"cimd host_rate shape", "{\n mcp_auth {\n  cimd {\n   host_rate 10\n  }\n }\n}\n", `want <n>/<duration>`},
		{"cimd host_rate zero", "{\n mcp_auth {\n  cimd {\n   host_rate 0/10s\n  }\n }\n}\n", `not a whole number`},
		{"cimd requester_rate duration", "{\n mcp_auth {\n  cimd {\n   requester_rate 5/soon\n  }\n }\n}\n", `not a positive duration`},
		{"cimd domain_rate negative", "{\n mcp_auth {\n  cimd {\n   domain_rate 5/-1s\n  }\n }\n}\n", `not a positive duration`},
		{"cimd negative_cache", "{\n mcp_auth {\n  cimd {\n   negative_cache never\n  }\n }\n}\n", `"never" is not a positive duration or off`},
		{"cimd client over 24h", "{\n mcp_auth {\n  cimd {\n   client https://claude.ai/c {\n    access_token_lifetime 25h\n   }\n  }\n }\n}\n", "access_token_lifetime 25h0m0s is longer than 24h0m0s"},
		{"cimd client without id", "{\n mcp_auth {\n  cimd {\n   client {\n    scopes a\n   }\n  }\n }\n}\n", "wrong argument count"},
		{"cimd client_host twice", "{\n mcp_auth {\n  cimd {\n   client_host claude.ai {\n   }\n   client_host claude.ai {\n   }\n  }\n }\n}\n", "client_host claude.ai is configured twice"},
		{"cimd client unknown option", "{\n mcp_auth {\n  cimd {\n   client_host claude.ai {\n    grant_lifetime 1h\n   }\n  }\n }\n}\n", `unknown cimd client option "grant_lifetime"`},
		{"cimd remember_consent", "{\n mcp_auth {\n  cimd {\n   client_host claude.ai {\n    remember_consent forever\n   }\n  }\n }\n}\n", `remember_consent "forever" is not a positive duration or off`},
		{"cimd refresh lifetime zero", "{\n mcp_auth {\n  cimd {\n   client_host claude.ai {\n    refresh_token_lifetime 0s\n   }\n  }\n }\n}\n", "refresh_token_lifetime must be positive"},
		{"dcr rate", "{\n mcp_auth {\n  dcr {\n   rate_limit 0 1m\n  }\n }\n}\n", "rate_limit burst"},
		{"dcr global rate", "{\n mcp_auth {\n  dcr {\n   global_rate_limit 10\n  }\n }\n}\n", "global_rate_limit <burst> <refill interval>"},
		{"dcr max clients", "{\n mcp_auth {\n  dcr {\n   max_clients 0\n  }\n }\n}\n", "max_clients 0 is not a positive number"},
		{"ipv6 prefix", "{\n mcp_auth {\n  client_ipv6_prefix 129\n }\n}\n", "client_ipv6_prefix 129 must be between 1 and 128"},
		{"ipv4 prefix", "{\n mcp_auth {\n  client_ipv4_prefix 0\n }\n}\n", "client_ipv4_prefix 0 must be between 1 and 32"},
		{"dcr unknown", "{\n mcp_auth {\n  dcr {\n   confidential\n  }\n }\n}\n", `unknown dcr option "confidential"`},
		{"token rate", "{\n mcp_auth {\n  token_rate_limit fast\n }\n}\n", `token_rate_limit "fast"`},
		{"saml without metadata", "{\n mcp_auth {\n  login {\n   saml corp {\n    binding post\n   }\n  }\n }\n}\n", "exactly one of idp_metadata_url"},
		{"saml binding", "{\n mcp_auth {\n  login {\n   saml corp {\n    idp_metadata_file /x\n    binding artifact\n   }\n  }\n }\n}\n", `binding "artifact"`},
		{"oidc unknown", "{\n mcp_auth {\n  login {\n   oidc g {\n    implicit\n   }\n  }\n }\n}\n", `unknown oidc option "implicit"`},
		{"home realm args", "{\n mcp_auth {\n  login {\n   home_realm example.org\n  }\n }\n}\n", "home_realm <email domain> <provider>"},
		{"twice", "{\n mcp_auth {\n }\n mcp_auth {\n }\n}\n", "only once"},
		{"enterprise_idp without name", "{\n mcp_auth {\n  enterprise_idp {\n  }\n }\n}\n", "enterprise_idp needs a name"},
		{"enterprise_idp subject", "{\n mcp_auth {\n  enterprise_idp acme {\n   subject by_name\n  }\n }\n}\n", `subject: "by_name": want by_sub or by_verified_email`},
		{"enterprise_idp provision", "{\n mcp_auth {\n  enterprise_idp acme {\n   provision maybe\n  }\n }\n}\n", `want on or off, not "maybe"`},
		{"enterprise_idp scope_map", "{\n mcp_auth {\n  enterprise_idp acme {\n   scope_map mcp.read\n  }\n }\n}\n", "scope_map needs an IdP scope and our scopes"},
		{"enterprise_idp unknown", "{\n mcp_auth {\n  enterprise_idp acme {\n   trust_all\n  }\n }\n}\n", `unknown enterprise_idp option "trust_all"`},
		{"workload client args", "{\n mcp_auth {\n  workload_issuer gh {\n   client repo:a/b\n  }\n }\n}\n", "client needs a workload subject and a client id"},
		{"workload subject twice", "{\n mcp_auth {\n  workload_issuer gh {\n   client s a\n   client s b\n  }\n }\n}\n", "workload subject s is mapped twice"},
		{"workload unknown", "{\n mcp_auth {\n  workload_issuer gh {\n   any_audience\n  }\n }\n}\n", `unknown workload_issuer option "any_audience"`},
		{"client grant_types empty", "{\n mcp_auth {\n  client app {\n   grant_types\n  }\n }\n}\n", "wrong argument count"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := adapt(t, c.src)
			if err == nil {
				t.Fatalf("adapted without error; want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "Caddyfile:") {
				t.Errorf("error %q does not name the file and line", err)
			}
		})
	}
}

// TestCaddyfileGuardRouteShape pins what the README says of mcp_protect with
// and without a matcher: without one, Caddy merges the guard and
// reverse_proxy into one route (nothing compiled per request beyond the
// guard); with one, the guard's route also matches the root discovery paths,
// so it stays apart from reverse_proxy's.
func TestCaddyfileGuardRouteShape(t *testing.T) {
	site := func(matcher string) string {
		return "http://mcp.example.com {\n mcp_protect " + matcher + "{\n  issuer https://auth.example.com\n  scopes todo:read\n }\n" +
			" reverse_proxy " + matcher + "localhost:9000\n}\n"
	}
	type route struct {
		Match  []map[string]json.RawMessage `json:"match"`
		Handle []struct {
			Handler string          `json:"handler"`
			Routes  json.RawMessage `json:"routes"`
		} `json:"handle"`
	}
	// siteRoutes returns the routes of the one site's subroute.
	siteRoutes := func(t *testing.T, src string) []route {
		t.Helper()
		out, err := adapt(t, src)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Apps struct {
				HTTP struct {
					Servers map[string]struct {
						Routes []route `json:"routes"`
					} `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
		for _, srv := range cfg.Apps.HTTP.Servers {
			if len(srv.Routes) != 1 || len(srv.Routes[0].Handle) != 1 || srv.Routes[0].Handle[0].Handler != "subroute" {
				t.Fatalf("want one host route with a subroute:\n%s", out)
			}
			var inner []route
			if err := json.Unmarshal(srv.Routes[0].Handle[0].Routes, &inner); err != nil {
				t.Fatal(err)
			}
			return inner
		}
		t.Fatalf("no server:\n%s", out)
		return nil
	}
	handlers := func(r route) (hs []string) {
		for _, h := range r.Handle {
			hs = append(hs, h.Handler)
		}
		return hs
	}

	one := siteRoutes(t, site(""))
	if len(one) != 1 || len(one[0].Match) != 0 || strings.Join(handlers(one[0]), ",") != "mcp_resource_guard,reverse_proxy" {
		t.Fatalf("without a matcher: want one route [mcp_resource_guard reverse_proxy] matching every path, got %+v", one)
	}

	two := siteRoutes(t, site("/mcp* "))
	if len(two) != 2 || strings.Join(handlers(two[0]), ",") != "mcp_resource_guard" || strings.Join(handlers(two[1]), ",") != "reverse_proxy" {
		t.Fatalf("with a matcher: want the guard's route, then reverse_proxy's, got %+v", two)
	}
	if len(two[0].Match) != 2 || !strings.Contains(string(two[0].Match[1]["path"]), "/.well-known/oauth-protected-resource") {
		t.Fatalf("with a matcher: the guard's route must match /mcp* or the discovery paths, got %+v", two[0].Match)
	}
}
