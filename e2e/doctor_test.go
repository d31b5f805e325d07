package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// vendorDocs serves stand-ins for the vendors' published client metadata
// documents (no internet in CI), each with the vendor's real redirect URIs
// and auth method, so that the doctor can be pointed at them with
// --client-metadata.
type vendorDocs struct {
	CAFile string
	URLs   map[string]string // profile name -> document URL
}

func startVendorDocs(t *testing.T) *vendorDocs {
	t.Helper()
	docs := map[string]string{}
	v := &vendorDocs{URLs: map[string]string{}}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, err := jwk.FromRaw(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "chatgpt-test")
	_ = pub.Set(jwk.AlgorithmKey, "ES256")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	var base string
	base, v.CAFile = startTLSDocs(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := docs[r.URL.Path]
		if r.URL.Path == "/jwks.json" {
			body, ok = string(jwks), true
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	add := func(name, path, redirect, method string, extra string) {
		u := base + path
		v.URLs[name] = u
		docs[path] = fmt.Sprintf(`{"client_id":%q,"client_name":%q,"redirect_uris":[%q],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":%q%s}`,
			u, name, redirect, method, extra)
	}
	add("Claude", "/claude.json", "https://claude.ai/api/mcp/auth_callback", "none", "")
	add("Claude Code", "/claude-code.json", "http://localhost/callback", "none", "")
	add("ChatGPT", "/chatgpt.json", "https://chatgpt.com/connector_platform_oauth_redirect", "private_key_jwt", fmt.Sprintf(`,"jwks_uri":%q`, base+"/jwks.json"))
	add("VS Code", "/vscode.json", "http://127.0.0.1/callback", "none", "")
	return v
}

type doctorReport struct {
	Resource string `json:"resource"`
	Issuer   string `json:"issuer"`
	Failed   int    `json:"failed"`
	Results  []struct {
		Client, Check, Status, Detail, Fix string
	} `json:"results"`
}

func (r doctorReport) get(client, check string) (status, detail, fix string) {
	for _, x := range r.Results {
		if x.Client == client && x.Check == check {
			return x.Status, x.Detail, x.Fix
		}
	}
	return "", "", ""
}

// runDoctor runs the built binary's `mcpauth doctor` against the stack.
func runDoctor(t *testing.T, s *stack, v *vendorDocs, mcpURL string, extra ...string) (doctorReport, string, int) {
	t.Helper()
	args := []string{"mcpauth", "doctor", mcpURL, "--ca-file", s.RootPEM, "--ca-file", v.CAFile, "--insecure-allow-loopback"}
	for name, u := range v.URLs {
		args = append(args, "--client-metadata", name+"="+u)
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, caddyBin, append(args, "--json")...).Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("doctor: %v", err)
	}
	var rep doctorReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("doctor --json printed no report (%v):\n%s", err, out)
	}
	text, _ := exec.CommandContext(ctx, caddyBin, append(args, "--no-register")...).CombinedOutput()
	return rep, string(text), code
}

func (r doctorReport) failures() []string {
	var out []string
	for _, x := range r.Results {
		if x.Status == "FAIL" {
			out = append(out, x.Client+"/"+x.Check+": "+x.Detail)
		}
	}
	return out
}

// TestDoctor runs `mcpauth doctor` from the built binary against a real
// site: a good configuration passes for every client, and each deliberate
// misconfiguration is found, attributed to the clients it breaks, with a
// fix, and the exit status says so.
func TestDoctor(t *testing.T) {
	v := startVendorDocs(t)
	good := stackOpts{extraApp: fmt.Sprintf(`cimd {
			policy any
			insecure_allow_loopback
			ca_bundle %s
		}
		dcr
		cors_origins http://localhost:6274`, v.CAFile)}
	s := startStack(t, good)

	t.Run("good", func(t *testing.T) {
		rep, text, code := runDoctor(t, s, v, s.MCPURL)
		t.Logf("doctor on a good site:\n%s", text)
		if code != 0 || rep.Failed != 0 {
			t.Fatalf("a good site has failures (exit %d): %v\n%s", code, rep.failures(), text)
		}
		if rep.Resource != s.MCPURL || rep.Issuer != s.Issuer {
			t.Fatalf("report names resource %q issuer %q", rep.Resource, rep.Issuer)
		}
		for _, c := range []string{"Claude", "Claude Code", "ChatGPT", "VS Code"} {
			if st, d, _ := rep.get(c, "lane"); st != "ok" || !strings.Contains(d, "metadata document") {
				t.Errorf("%s lane = %s %q, want CIMD", c, st, d)
			}
			if st, d, _ := rep.get(c, "cimd"); st != "ok" {
				t.Errorf("%s cimd = %s %q", c, st, d)
			}
			if st, d, _ := rep.get(c, "audience"); st != "ok" {
				t.Errorf("%s audience = %s %q", c, st, d)
			}
		}
		for _, c := range []string{"Cursor", "Inspector"} {
			if st, d, _ := rep.get(c, "dcr"); st != "ok" || !strings.Contains(d, "registered as") {
				t.Errorf("%s dcr = %s %q", c, st, d)
			}
		}
		if st, d, _ := rep.get("Inspector", "cors"); st != "ok" {
			t.Errorf("Inspector cors = %s %q", st, d)
		}
		for _, want := range []string{"CLIENT", "CHALLENGE", "Claude Code", "Inspector", "0 failed"} {
			if !strings.Contains(text, want) {
				t.Errorf("table lacks %q:\n%s", want, text)
			}
		}
	})

	broken := []struct {
		name  string
		opts  stackOpts
		check func(t *testing.T, rep doctorReport, text string)
	}{
		{
			name: "no DCR",
			opts: stackOpts{extraApp: fmt.Sprintf("cimd {\n\t\t\tpolicy any\n\t\t\tinsecure_allow_loopback\n\t\t\tca_bundle %s\n\t\t}\n\t\tcors_origins http://localhost:6274", v.CAFile)},
			check: func(t *testing.T, rep doctorReport, text string) {
				if st, _, fix := rep.get("Cursor", "lane"); st != "FAIL" || !strings.Contains(fix, "dcr") {
					t.Errorf("Cursor without DCR: lane %s fix %q", st, fix)
				}
				if st, _, _ := rep.get("Claude", "lane"); st != "ok" {
					t.Errorf("Claude should still onboard through CIMD: %s", st)
				}
			},
		},
		{
			name: "CIMD host not trusted",
			opts: stackOpts{extraApp: fmt.Sprintf("cimd {\n\t\t\tpolicy trusted\n\t\t\ttrusted_hosts example.org\n\t\t\tinsecure_allow_loopback\n\t\t\tca_bundle %s\n\t\t}\n\t\tdcr", v.CAFile)},
			check: func(t *testing.T, rep doctorReport, text string) {
				st, d, fix := rep.get("Claude", "cimd")
				if st != "FAIL" || !strings.Contains(fix, "trusted_hosts") || !strings.Contains(d, "document itself is valid") {
					t.Errorf("untrusted CIMD host: cimd %s %q fix %q", st, d, fix)
				}
			},
		},
		{
			name: "CORS origin missing",
			opts: stackOpts{extraApp: fmt.Sprintf("cimd {\n\t\t\tpolicy any\n\t\t\tinsecure_allow_loopback\n\t\t\tca_bundle %s\n\t\t}\n\t\tdcr\n\t\tcors_origins https://other.example", v.CAFile)},
			check: func(t *testing.T, rep doctorReport, text string) {
				if st, d, fix := rep.get("Inspector", "cors"); st != "FAIL" || !strings.Contains(fix, "cors_origins") {
					t.Errorf("Inspector without its origin: cors %s %q fix %q", st, d, fix)
				}
				if st, _, _ := rep.get("Claude", "cors"); st != "-" {
					t.Errorf("Claude is not a browser client, cors = %s", st)
				}
			},
		},
		{
			name: "MCP endpoint not guarded",
			opts: stackOpts{protect: "/not-the-mcp-endpoint*", proxyAll: true, extraApp: "dcr"},
			check: func(t *testing.T, rep doctorReport, text string) {
				st, d, fix := rep.get("Claude", "challenge")
				if st != "FAIL" || !strings.Contains(fix, "mcp_protect") {
					t.Errorf("unguarded endpoint: challenge %s %q fix %q", st, d, fix)
				}
				if !strings.Contains(text, "fix: put `mcp_protect`") {
					t.Errorf("the text report does not give the fix:\n%s", text)
				}
			},
		},
	}
	for _, b := range broken {
		t.Run(b.name, func(t *testing.T) {
			s.caddy.reload(t, s.caddyfile(b.opts))
			rep, text, code := runDoctor(t, s, v, s.MCPURL)
			t.Logf("doctor on a site with %s:\n%s", b.name, text)
			if code == 0 || rep.Failed == 0 {
				t.Fatalf("a broken site passed (exit %d):\n%s", code, text)
			}
			b.check(t, rep, text)
		})
	}
}
