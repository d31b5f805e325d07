package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"
)

// recorder is an upstream that records the path and Cookie header of every
// request it receives.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []recorded
}

type recorded struct {
	path    string // escaped
	cookies []string
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, recorded{path: r.URL.EscapedPath(), cookies: r.Header.Values("Cookie")})
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) addr() string { return strings.TrimPrefix(r.URL, "http://") }

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.seen...)
}

// signIn runs the owned client's flow in b (which keeps the hosted login's
// cookies) and returns the access token.
func signIn(t *testing.T, s *stack, b *browser) string {
	t.Helper()
	conf := s.oauthConfig("todo:read")
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", s.MCPURL))
	res := b.authorize(t, authURL, aliceEmail, alicePassword)
	if res.Query.Get("code") == "" {
		t.Fatalf("no code: %v", res.Query)
	}
	tok, err := conf.Exchange(s.ctx(), res.Query.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", s.MCPURL))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok.AccessToken
}

// Requirement 39 (issue item 7): a browser that signed in at the hosted
// login sends its session and CSRF cookies to the MCP endpoint on the same
// host; the guard removes them before the upstream, keeps the others, and
// with `strip_cookies all` removes every cookie.
func TestGuardStripsProductCookies(t *testing.T) {
	for _, all := range []bool{false, true} {
		name := "default"
		if all {
			name = "strip_cookies all"
		}
		t.Run(name, func(t *testing.T) {
			rec := startRecorder(t)
			o := stackOpts{upstream: rec.addr()}
			if all {
				o.extraGuard = "strip_cookies all"
			}
			s := startStack(t, o)
			b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
			tok := signIn(t, s, b)

			mcp, _ := url.Parse(s.MCPURL)
			var product []string
			for _, c := range b.Jar.Cookies(mcp) {
				if strings.Contains(c.Name, "mcpauth_") {
					product = append(product, c.Name)
				}
			}
			if !strings.Contains(strings.Join(product, " "), "__Host-mcpauth_session") {
				t.Fatalf("the browser holds no login session cookie for the MCP host (cookies: %v): the test proves nothing", product)
			}
			b.Jar.SetCookies(mcp, []*http.Cookie{{Name: "theme", Value: "dark", Path: "/"}})
			req, _ := http.NewRequest("POST", s.MCPURL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := b.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("guarded request: %d", resp.StatusCode)
			}
			if !strings.Contains(strings.Join(req.Header.Values("Cookie"), ";"), "__Host-mcpauth_session") {
				t.Fatalf("the client did not send the session cookie: %q", req.Header.Values("Cookie"))
			}
			seen := rec.requests()
			if len(seen) != 1 {
				t.Fatalf("upstream saw %d requests", len(seen))
			}
			got := strings.Join(seen[0].cookies, "; ")
			if strings.Contains(strings.ToLower(got), "mcpauth") {
				t.Fatalf("upstream received the product's cookies: %q", got)
			}
			if all && len(seen[0].cookies) != 0 {
				t.Fatalf("strip_cookies all: upstream received %q", got)
			}
			if !all && got != "theme=dark" {
				t.Fatalf("upstream Cookie = %q, want theme=dark", got)
			}
		})
	}
}

// Issue item 11: `mcp_protect /mcp` (exact) guards /mcp/… as `/mcp*` does,
// with reverse_proxy unmatched: nothing under /mcp reaches the upstream
// without a token.
func TestGuardExactMatcherGuardsSubpaths(t *testing.T) {
	for _, m := range []string{"/mcp", "/mcp*"} {
		t.Run(m, func(t *testing.T) {
			rec := startRecorder(t)
			s := startStack(t, stackOpts{upstream: rec.addr(), protect: m, proxyAll: true})
			for _, p := range []string{"/mcp", "/mcp/", "/mcp/x", "/mcp%2F", "/mcp/x/../y", "/MCP/x"} {
				req, _ := http.NewRequest("POST", s.Issuer+p, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
				req.URL.RawPath = p // keep %2F as sent
				resp, err := s.Client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("%s without a token: %d %q, want 401 with a challenge", p, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
				}
			}
			if seen := rec.requests(); len(seen) != 0 {
				t.Fatalf("upstream reached without a token: %v", seen)
			}
			// The upstream is reachable at all: other paths are proxied.
			resp, err := s.Client.Get(s.Issuer + "/elsewhere")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if seen := rec.requests(); resp.StatusCode != 200 || len(seen) != 1 || seen[0].path != "/elsewhere" {
				t.Fatalf("unguarded path: %d %v", resp.StatusCode, seen)
			}
		})
	}
}

// Issue item 13 (a, c) through Caddy: absurd headers get 431 before the
// guard's work; a token in the query is invalid_request with a challenge.
func TestGuardRefusesHeaderFloodsAndQueryTokens(t *testing.T) {
	rec := startRecorder(t)
	s := startStack(t, stackOpts{upstream: rec.addr()})
	req, _ := http.NewRequest("POST", s.MCPURL, nil)
	for i := range 150 {
		req.Header.Set("X-Filler-"+strings.Repeat("a", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), "v")
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 431 {
		t.Fatalf("150 headers: %d, want 431", resp.StatusCode)
	}
	for _, q := range []string{"access_token=abc", "x=1;access_token=abc", "access.token=abc"} {
		resp, err := s.Client.Post(s.MCPURL+"?"+q, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(ch, `error="invalid_request"`) || !strings.Contains(ch, "resource_metadata=") {
			t.Fatalf("?%s: %d %q", q, resp.StatusCode, ch)
		}
	}
	if seen := rec.requests(); len(seen) != 0 {
		t.Fatalf("upstream reached: %v", seen)
	}
}
