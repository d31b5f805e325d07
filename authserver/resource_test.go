package authserver

import (
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

func TestNormalizeResource(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" = refused with invalid_target
	}{
		{"bare origin", "https://mcp.example", "https://mcp.example"},
		{"bare origin trailing slash", "https://mcp.example/", "https://mcp.example"},
		{"path kept", "https://mcp.example/mcp", "https://mcp.example/mcp"},
		{"path trailing slash significant", "https://mcp.example/mcp/", "https://mcp.example/mcp/"},
		{"uppercase scheme and host", "HTTPS://MCP.Example.COM/Mcp", "https://mcp.example.com/Mcp"},
		{"path case kept", "https://mcp.example/MCP", "https://mcp.example/MCP"},
		{"default https port", "https://mcp.example:443/mcp", "https://mcp.example/mcp"},
		{"default https port bare", "https://mcp.example:443/", "https://mcp.example"},
		{"default http port", "http://localhost:80/mcp", "http://localhost/mcp"},
		{"non-default port kept", "https://mcp.example:8443/mcp", "https://mcp.example:8443/mcp"},
		{"https on port 80 kept", "https://mcp.example:80/mcp", "https://mcp.example:80/mcp"},
		{"port leading zeros", "https://mcp.example:0443/", "https://mcp.example"},
		{"empty port", "https://mcp.example:/mcp", "https://mcp.example/mcp"},
		{"query kept", "https://mcp.example/mcp?tenant=a", "https://mcp.example/mcp?tenant=a"},
		{"empty query dropped", "https://mcp.example/mcp?", "https://mcp.example/mcp"},
		{"idna unicode host", "https://BÜCHER.example/mcp", "https://xn--bcher-kva.example/mcp"},
		{"idna punycode uppercase", "https://XN--BCHER-KVA.example/mcp", "https://xn--bcher-kva.example/mcp"},
		{"ipv4", "http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080/mcp"},
		{"ipv6 canonical", "http://[0:0::1]:8080/mcp", "http://[::1]:8080/mcp"},
		{"ipv6 uppercase", "https://[2001:DB8::1]/mcp", "https://[2001:db8::1]/mcp"},
		{"percent-encoding kept", "https://mcp.example/a%2Fb", "https://mcp.example/a%2Fb"},

		{"empty", "", ""},
		{"relative path", "/mcp", ""},
		{"relative name", "mcp.example/mcp", ""},
		{"scheme-relative", "//mcp.example/mcp", ""},
		{"fragment", "https://mcp.example/mcp#frag", ""},
		{"empty fragment", "https://mcp.example/mcp#", ""},
		{"urn has no host", "urn:example:mcp", ""},
		{"opaque", "https:mcp.example", ""},
		{"no host", "https:///mcp", ""},
		{"userinfo", "https://user@mcp.example/mcp", ""},
		{"space", "https://mcp.example/m cp", ""},
		{"control", "https://mcp.example/\x7f", ""},
		{"backslash", "https://mcp.example\\@evil.example/", ""},
		{"bad port", "https://mcp.example:99999/", ""},
		{"ipv6 zone", "http://[fe80::1%25eth0]/mcp", ""},
		{"invalid idna", "https://xn--a.example/", ""},
		{"too long", "https://mcp.example/" + strings.Repeat("a", 2048), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeResource(tt.in)
			if tt.want == "" {
				e := oauth.AsError(err)
				if err == nil || e.Code != "invalid_target" || e.Status != 400 {
					t.Fatalf("got %q, %v; want invalid_target", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			again, err := NormalizeResource(got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: %q -> %q, %v", got, again, err)
			}
		})
	}
}

func TestResourcePolicyResolve(t *testing.T) {
	const (
		mcpA = "https://mcp.example/a"
		mcpB = "https://mcp.example/b"
		aud  = "https://api.example"
	)
	plain := storage.Client{ID: "c1"}
	withAud := storage.Client{ID: "c2", Kind: storage.ClientOwned, DefaultAudience: aud}
	dcrAud := storage.Client{ID: "c3", Kind: storage.ClientDCR, DefaultAudience: aud}
	cimdAud := storage.Client{ID: "https://c.example/meta", Kind: storage.ClientCIMD, DefaultAudience: aud}
	tests := []struct {
		name      string
		policy    ResourcePolicy
		requested []string
		client    storage.Client
		want      string // "" = invalid_target
	}{
		{"known resource", ResourcePolicy{Enabled: true, Known: []string{mcpA, mcpB}}, []string{mcpA}, plain, mcpA},
		{"known resource normalized", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{"HTTPS://MCP.EXAMPLE:443/a"}, plain, mcpA},
		{"default resource is known", ResourcePolicy{Enabled: true, Default: mcpB}, []string{mcpB}, plain, mcpB},
		{"client audience is known", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{aud + "/"}, withAud, aud},
		{"unknown resource", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{"https://evil.example/a"}, plain, ""},
		{"trailing slash is another resource", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{mcpA + "/"}, plain, ""},
		{"invalid resource", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{"/a"}, plain, ""},
		{"empty resource value", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{""}, plain, ""},
		{"fragment", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{mcpA + "#x"}, plain, ""},
		{"several values", ResourcePolicy{Enabled: true, Known: []string{mcpA, mcpB}}, []string{mcpA, mcpB}, plain, ""},
		{"several equal values", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{mcpA, mcpA}, plain, ""},
		{"none: client audience fallback on", ResourcePolicy{Enabled: true, ClientAudienceFallback: true, Known: []string{mcpA, mcpB}}, nil, withAud, aud},
		{"none: client audience fallback off uses default", ResourcePolicy{Enabled: true, Known: []string{mcpA, mcpB}, Default: mcpB}, nil, withAud, mcpB},
		{"none: fallback on but client has none", ResourcePolicy{Enabled: true, ClientAudienceFallback: true, Default: mcpA}, nil, plain, mcpA},
		{"none: single known is default", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, nil, plain, mcpA},
		{"none: several known and no default", ResourcePolicy{Enabled: true, Known: []string{mcpA, mcpB}}, nil, plain, ""},
		{"none: nothing configured", ResourcePolicy{Enabled: true}, nil, plain, ""},
		{"disabled ignores requested", ResourcePolicy{Enabled: false, Default: mcpA}, []string{"https://evil.example"}, plain, mcpA},
		{"disabled ignores several", ResourcePolicy{Enabled: false, Known: []string{mcpB}}, []string{mcpA, mcpB}, plain, mcpB},
		{"disabled uses client audience", ResourcePolicy{Enabled: false, ClientAudienceFallback: true, Default: mcpA}, nil, withAud, aud},
		{"dcr client audience is not known", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{aud}, dcrAud, ""},
		{"cimd client audience is not known", ResourcePolicy{Enabled: true, Known: []string{mcpA}}, []string{aud}, cimdAud, ""},
		{"dcr client audience is no fallback", ResourcePolicy{Enabled: true, ClientAudienceFallback: true, Default: mcpA}, nil, dcrAud, mcpA},
		{"cimd client audience is no fallback", ResourcePolicy{Enabled: true, ClientAudienceFallback: true, Known: []string{mcpA, mcpB}}, nil, cimdAud, ""},
		{"disabled with nothing configured", ResourcePolicy{Enabled: false}, nil, plain, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.policy.Resolve(tt.requested, tt.client)
			if tt.want == "" {
				if err == nil || err.Code != "invalid_target" || err.Status != 400 || got != "" {
					t.Fatalf("got %q, %v; want invalid_target", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestResourcePolicyCheckExchange(t *testing.T) {
	const bound = "https://mcp.example/a"
	on := ResourcePolicy{Enabled: true, EnforceOnTokenExchange: true}
	off := ResourcePolicy{Enabled: true}
	tests := []struct {
		name      string
		policy    ResourcePolicy
		requested []string
		ok        bool
	}{
		{"enforced: absent keeps binding", on, nil, true},
		{"enforced: same", on, []string{bound}, true},
		{"enforced: same after normalization", on, []string{"HTTPS://mcp.example:443/a"}, true},
		{"enforced: different", on, []string{"https://mcp.example/b"}, false},
		{"enforced: trailing slash differs", on, []string{bound + "/"}, false},
		{"enforced: invalid", on, []string{"not a uri"}, false},
		{"enforced: several", on, []string{bound, bound}, false},
		{"not enforced: different ignored", off, []string{"https://mcp.example/b"}, true},
		{"not enforced: several ignored", off, []string{bound, "x"}, true},
		{"disabled: ignored", ResourcePolicy{EnforceOnTokenExchange: true}, []string{"https://other.example"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.policy.CheckExchange(tt.requested, bound)
			if tt.ok {
				if err != nil || got != bound {
					t.Fatalf("got %q, %v; want %q", got, err, bound)
				}
				return
			}
			if err == nil || err.Code != "invalid_target" || err.Status != 400 || got != "" {
				t.Fatalf("got %q, %v; want invalid_target", got, err)
			}
		})
	}
}

func TestResourcePolicyCheckRefresh(t *testing.T) {
	const bound = "https://mcp.example/a"
	served := []string{bound, "https://mcp.example/b"}
	keep := ResourcePolicy{Enabled: true, KeepBindingOnRefresh: true, Known: served}
	strict := ResourcePolicy{Enabled: true, Known: served}
	// gone: the bound resource is no longer configured (requirement 30).
	gone := ResourcePolicy{Enabled: true, KeepBindingOnRefresh: true, Known: []string{"https://mcp.example/b"}}
	tests := []struct {
		name      string
		policy    ResourcePolicy
		requested []string
		want      string // "" = ok
		clientAud string
	}{
		{"keep: absent keeps binding", keep, nil, "", ""},
		{"keep: same", keep, []string{bound}, "", ""},
		{"keep: same normalized", keep, []string{"https://MCP.example/a"}, "", ""},
		{"keep: different", keep, []string{"https://mcp.example/b"}, "invalid_target", ""},
		{"keep: unknown", keep, []string{"https://unknown.example/a"}, "invalid_target", ""},
		{"keep: several", keep, []string{bound, bound}, "invalid_target", ""},
		{"keep: invalid", keep, []string{"#"}, "invalid_target", ""},
		{"strict: absent refused", strict, nil, "invalid_target", ""},
		{"strict: same", strict, []string{bound}, "", ""},
		{"strict: different", strict, []string{"https://mcp.example/b"}, "invalid_target", ""},
		{"gone: absent", gone, nil, "invalid_grant", ""},
		{"gone: the bound resource", gone, []string{bound}, "invalid_grant", ""},
		{"gone: a served resource", gone, []string{"https://mcp.example/b"}, "invalid_grant", ""},
		{"gone: an unknown resource", gone, []string{"https://unknown.example/a"}, "invalid_target", ""},
		{"gone: invalid", gone, []string{"#"}, "invalid_target", ""},
		{"gone, binding not kept: absent", ResourcePolicy{Enabled: true, Known: gone.Known}, nil, "invalid_grant", ""},
		{"gone but the client's audience", ResourcePolicy{Enabled: true, KeepBindingOnRefresh: true}, nil, "", bound},
		{"disabled: ignored", ResourcePolicy{}, []string{"https://other.example"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := storage.Client{ID: "c", Kind: storage.ClientOwned, DefaultAudience: tt.clientAud}
			got, err := tt.policy.CheckRefresh(tt.requested, bound, client)
			if tt.want == "" {
				if err != nil || got != bound {
					t.Fatalf("got %q, %v; want %q", got, err, bound)
				}
				return
			}
			if err == nil || err.Code != tt.want || err.Status != 400 || got != "" {
				t.Fatalf("got %q, %v; want %s", got, err, tt.want)
			}
		})
	}
}
