package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const (
	aliceEmail    = "alice@example.com"
	alicePassword = "correct-horse-battery-staple"
	cliClientID   = "cli-app"
	cliRedirect   = "http://127.0.0.1:5555/callback"
)

// stack is caddy-mcpauth (authorization server + guard on one HTTPS site,
// Caddy's internal CA) in front of the sample MCP server.
type stack struct {
	caddy    *caddy
	todo     *proc
	todoAddr string
	port     int
	dir      string
	Issuer   string
	MCPURL   string
	Client   *http.Client // trusts Caddy's internal CA
	RootPEM  string       // path of the CA root
}

type stackOpts struct {
	// extraApp is added inside the global mcp_auth block.
	extraApp string
	// extraGuard is added inside the mcp_protect block.
	extraGuard string
	// productName is the login product name (changed by the reload test).
	productName string
	// noTodo runs without the sample server (upstream unreachable).
	noTodo bool
	// extraSites is appended after the main site ({SAMPLE_SERVER} is the sample
	// server's address).
	extraSites string
	// upstream replaces the sample server as the reverse_proxy target.
	upstream string
	// protect is mcp_protect's matcher (default /mcp*).
	protect string
	// proxyAll leaves reverse_proxy unmatched (every path not served by
	// mcp_auth_server goes upstream).
	proxyAll bool
}

func (s *stack) caddyfile(o stackOpts) string {
	if o.productName == "" {
		o.productName = "Todo MCP"
	}
	upstream, protect, proxy := s.todoAddr, "/mcp*", "/mcp* "
	if o.upstream != "" {
		upstream = o.upstream
	}
	if o.protect != "" {
		protect = o.protect
	}
	if o.proxyAll {
		proxy = ""
	}
	return fmt.Sprintf(`{
	admin {ADMIN}
	skip_install_trust
	local_certs
	auto_https disable_redirects
	persist_config off
	mcp_auth {
		issuer %[1]s
		storage bbolt %[2]s {
			lock_timeout 1h
		}
		scopes todo:read todo:write
		default_scopes todo:read
		login {
			product_name %[3]q
			user %[4]s %[5]s "Alice Example"
		}
		client %[6]s {
			name "CLI App"
			redirect_uri http://127.0.0.1/callback
			skip_consent
		}
		%[7]s
	}
}

https://localhost:%[8]d {
	tls internal
	mcp_auth_server
	mcp_protect %[11]s {
		scopes todo:read
		identity_headers {
			subject X-Mcp-Subject
			client_id X-Mcp-Client-Id
			scopes X-Mcp-Scopes
			email X-Mcp-Email
		}
		%[9]s
	}
	reverse_proxy %[12]s%[10]s {
		flush_interval -1
	}
}
`, s.Issuer, filepath.Join(s.dir, "mcpauth.db"), o.productName, aliceEmail, alicePassword, cliClientID, o.extraApp, s.port, o.extraGuard, upstream, protect, proxy) +
		strings.ReplaceAll(o.extraSites, "{SAMPLE_SERVER}", s.todoAddr)
}

func startStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	return startStackWith(t, o, nil)
}

// startStackWith is startStack with extra sites computed from the stack
// (its issuer and MCP URL are known only once ports are chosen).
func startStackWith(t testing.TB, o stackOpts, sites func(*stack) string) *stack {
	t.Helper()
	binaries(t)
	s := &stack{dir: t.TempDir(), port: freePort(t)}
	s.Issuer = fmt.Sprintf("https://localhost:%d", s.port)
	s.MCPURL = s.Issuer + "/mcp"
	if o.noTodo {
		s.todoAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	} else {
		s.todoAddr, s.todo = startTodo(t)
	}
	if sites != nil {
		o.extraSites = sites(s)
	}
	s.caddy = startCaddy(t, s.dir, s.caddyfile(o))
	s.RootPEM = filepath.Join(s.dir, "data", "caddy", "pki", "authorities", "local", "root.crt")
	s.Client = trustingClient(t, s.RootPEM)
	waitHTTP(t, s.Client, s.Issuer+"/.well-known/oauth-authorization-server")
	return s
}

func trustingClient(t testing.TB, rootPath string) *http.Client {
	t.Helper()
	var pem []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(rootPath)
		if err == nil && len(b) > 0 {
			pem = b
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Caddy's internal CA root never appeared at %s: %v", rootPath, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad CA root PEM")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func (s *stack) oauthConfig(scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    cliClientID,
		RedirectURL: cliRedirect,
		Scopes:      scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   s.Issuer + "/authorize",
			TokenURL:  s.Issuer + "/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

func (s *stack) ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, s.Client)
}

// login runs the authorization code flow with PKCE and resource through
// the hosted login and returns the token.
func (s *stack) login(t testing.TB, conf *oauth2.Config) *oauth2.Token {
	t.Helper()
	return s.loginWith(t, conf, s.ctx())
}

// loginWith is login with the token request sent through the HTTP client
// of ctx (oauth2.HTTPClient), e.g. one that adds DPoP proofs.
func (s *stack) loginWith(t testing.TB, conf *oauth2.Config, ctx context.Context) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	state := oauth2.GenerateVerifier()[:22]
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", s.MCPURL))
	b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	res := b.authorize(t, authURL, aliceEmail, alicePassword)
	q := res.Query
	if q.Get("error") != "" {
		t.Fatalf("authorization error: %s %s", q.Get("error"), q.Get("error_description"))
	}
	if got := q["state"]; len(got) != 1 || got[0] != state {
		t.Fatalf("state = %v, want exactly [%s]", got, state)
	}
	if got := q["iss"]; len(got) != 1 || got[0] != s.Issuer {
		t.Fatalf("iss = %v, want exactly [%s]", got, s.Issuer)
	}
	if len(q["code"]) != 1 {
		t.Fatalf("code = %v", q["code"])
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", s.MCPURL))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

// jwtClaims decodes a JWT's payload without verifying it (test inspection).
func jwtClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	b, err := decodeSeg(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// oauthError posts a form and returns status and the OAuth error code.
func postForm(t testing.TB, c *http.Client, u string, v url.Values) (int, string, map[string]any) {
	t.Helper()
	resp, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(body, &m)
	code, _ := m["error"].(string)
	return resp.StatusCode, code, m
}
