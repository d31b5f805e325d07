package cimd

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// docServer serves documents whose content and headers the test controls
// per path, and counts requests per path.
type docServer struct {
	*testServer
	mu      sync.Mutex
	docs    map[string]func(w http.ResponseWriter, r *http.Request)
	perPath map[string]int
}

func newDocServer(t *testing.T) *docServer {
	s := &docServer{docs: map[string]func(http.ResponseWriter, *http.Request){}, perPath: map[string]int{}}
	s.testServer = newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.docs[r.URL.Path]
		s.perPath[r.URL.Path]++
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	return s
}

func (s *docServer) set(path string, h http.HandlerFunc) {
	s.mu.Lock()
	s.docs[path] = h
	s.mu.Unlock()
}

func (s *docServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perPath[path]
}

type fetchLog struct {
	mu      sync.Mutex
	results []string
}

func (l *fetchLog) hook(host, result string) {
	l.mu.Lock()
	l.results = append(l.results, host+" "+result)
	l.mu.Unlock()
}

func (l *fetchLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.results...)
}

func newTestResolver(t *testing.T, s *docServer, clk *clock, mod func(*ResolverConfig)) (*Resolver, *fetchLog) {
	t.Helper()
	f := devFetcher(t, s.testServer, newFakeDNS("example.com", "127.0.0.1", "evil.test", "127.0.0.1"), func(c *FetcherConfig) {
		c.Now = clk.Now
		c.PerHostBurst = 1000
		c.PerHostConcurrency = 100
		c.PerDomainBurst, c.PerDomainConcurrency = 1000, 100
		c.PerRequesterBurst, c.PerRequesterConcurrency = 1000, 100
	})
	log := &fetchLog{}
	cfg := ResolverConfig{Fetcher: f, TrustedHosts: []string{"example.com"}, Now: clk.Now, OnFetch: log.hook}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, log
}

func TestResolveRealClients(t *testing.T) {
	s := newDocServer(t)
	clk := newClock()
	// Real documents, re-pointed at the test server.
	claude := strings.ReplaceAll(claudeDoc, claudeID, s.url("/oauth/mcp-oauth-client-metadata"))
	// Claude's document once exceeded 5 KB: pad it to 6 KB.
	claudeBig := strings.Replace(claude, `"client_name"`, `"x_description":"`+strings.Repeat("c", 6000)+`","client_name"`, 1)
	chatgpt := strings.ReplaceAll(chatgptDoc, chatgptID, s.url("/oauth/client.json"))
	vscode := strings.ReplaceAll(vscodeDoc, vscodeID, s.url("/oauth/client-metadata.json"))
	s.set("/oauth/mcp-oauth-client-metadata", serveJSON([]byte(claudeBig)))
	s.set("/oauth/client.json", serveJSON([]byte(chatgpt), "Content-Type", "application/json; charset=utf-8"))
	s.set("/oauth/client-metadata.json", serveJSON([]byte(vscode), "Cache-Control", "public, max-age=3600"))

	small, _ := newTestResolver(t, s, clk, nil)
	_, err := small.Resolve(context.Background(), s.url("/oauth/mcp-oauth-client-metadata"))
	if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "larger than 5120") {
		t.Fatalf("6 KB document with the default cap: %v", err)
	}

	big, log := newTestResolver(t, s, clk, nil)
	big.cfg.Fetcher.cfg.MaxBytes = 8 << 10
	for _, tc := range []struct {
		path, name string
		redirects  int
	}{
		{"/oauth/mcp-oauth-client-metadata", "Claude", 2},
		{"/oauth/client.json", "ChatGPT", 2},
		{"/oauth/client-metadata.json", "Visual Studio Code", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := big.Resolve(context.Background(), s.url(tc.path))
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if c.ID != s.url(tc.path) || c.Name != tc.name || len(c.RedirectURIs) != tc.redirects || c.TokenEndpointAuthMethod != "none" {
				t.Fatalf("client %+v", c)
			}
			if !c.CreatedAt.Equal(clk.Now()) {
				t.Fatalf("created at %v", c.CreatedAt)
			}
		})
	}
	want := []string{"example.com ok", "example.com ok", "example.com ok"}
	if got := log.list(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("OnFetch = %v, want %v", got, want)
	}
}

func TestResolveRefusals(t *testing.T) {
	s := newDocServer(t)
	clk := newClock()
	s.set("/mismatch", serveJSON(doc("https://example.com/other", nil)))
	s.set("/keyjwt", func(w http.ResponseWriter, r *http.Request) {
		serveJSON(doc(s.url("/keyjwt"), map[string]any{"token_endpoint_auth_method": "private_key_jwt"}))(w, r)
	})
	s.set("/basic", func(w http.ResponseWriter, r *http.Request) {
		serveJSON(doc(s.url("/basic"), map[string]any{"token_endpoint_auth_method": "client_secret_basic"}))(w, r)
	})
	s.set("/secret", func(w http.ResponseWriter, r *http.Request) {
		serveJSON(doc(s.url("/secret"), map[string]any{"client_secret": "hunter2"}))(w, r)
	})
	s.set("/noredirect", func(w http.ResponseWriter, r *http.Request) {
		serveJSON(doc(s.url("/noredirect"), map[string]any{"redirect_uris": nil}))(w, r)
	})
	s.set("/noname", func(w http.ResponseWriter, r *http.Request) {
		serveJSON(doc(s.url("/noname"), map[string]any{"client_name": nil}))(w, r)
	})
	s.set("/malformed", serveJSON([]byte(`{"client_id":"https://example.com/malformed",`)))
	s.set("/gone", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", http.StatusGone) })

	r, log := newTestResolver(t, s, clk, nil)
	tests := []struct {
		path     string
		sentinel error
		reason   string
	}{
		{"/mismatch", ErrInvalidDocument, "client_id does not match"},
		{"/keyjwt", ErrInvalidDocument, "private_key_jwt needs jwks_uri or jwks"},
		{"/basic", ErrInvalidDocument, `"client_secret_basic" uses a shared secret`},
		{"/secret", ErrInvalidDocument, "client_secret must not be present"},
		{"/noredirect", ErrInvalidDocument, "redirect_uris is missing"},
		{"/noname", ErrInvalidDocument, "client_name is missing"},
		{"/malformed", ErrInvalidDocument, "not a valid JSON object"},
		{"/gone", ErrFetch, "status 410"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := r.Resolve(context.Background(), s.url(tt.path))
			if !errors.Is(err, tt.sentinel) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want %v with %q", err, tt.sentinel, tt.reason)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error echoes the secret")
			}
			// Remembered briefly: a second resolve gives the same answer
			// without a fetch; after NegativeTTL it fetches again.
			before := s.count(tt.path)
			_, again := r.Resolve(context.Background(), s.url(tt.path))
			if again == nil || again.Error() != err.Error() || s.count(tt.path) != before {
				t.Fatalf("second resolve: %v after %d -> %d fetches", again, before, s.count(tt.path))
			}
			clk.Add(DefaultNegativeTTL)
			r.Resolve(context.Background(), s.url(tt.path))
			if s.count(tt.path) != before+1 {
				t.Fatalf("failure remembered past NegativeTTL")
			}
		})
	}
	for _, res := range log.list() {
		if !strings.HasSuffix(res, ResultInvalidDocument) && !strings.HasSuffix(res, ResultFetchError) {
			t.Fatalf("OnFetch result %q", res)
		}
	}
}

func TestResolvePolicy(t *testing.T) {
	s := newDocServer(t)
	clk := newClock()
	s.set("/client", func(w http.ResponseWriter, r *http.Request) { serveJSON(doc(s.url("/client"), nil))(w, r) })

	t.Run("trusted refuses other hosts without fetching", func(t *testing.T) {
		r, log := newTestResolver(t, s, clk, func(c *ResolverConfig) { c.TrustedHosts = []string{"claude.ai", "*.vscode.dev"} })
		before := s.hits.Load()
		_, err := r.Resolve(context.Background(), s.url("/client"))
		if !errors.Is(err, ErrUntrustedHost) {
			t.Fatalf("error = %v", err)
		}
		if s.hits.Load() != before {
			t.Fatal("untrusted host was fetched")
		}
		if got := log.list(); len(got) != 1 || got[0] != "example.com "+ResultUntrustedHost {
			t.Fatalf("OnFetch = %v", got)
		}
	})
	t.Run("invalid client id refused first", func(t *testing.T) {
		r, _ := newTestResolver(t, s, clk, func(c *ResolverConfig) { c.Policy = PolicyAny })
		_, err := r.Resolve(context.Background(), "https://example.com/a/../client")
		if !errors.Is(err, ErrInvalidClientID) {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("any accepts any host", func(t *testing.T) {
		r, _ := newTestResolver(t, s, clk, func(c *ResolverConfig) { c.Policy = PolicyAny; c.TrustedHosts = nil })
		if _, err := r.Resolve(context.Background(), s.url("/client")); err != nil {
			t.Fatalf("resolve: %v", err)
		}
	})
	t.Run("suffix patterns", func(t *testing.T) {
		r, _ := newTestResolver(t, s, clk, func(c *ResolverConfig) { c.TrustedHosts = []string{"claude.ai", "*.vscode.dev", "Chatgpt.com"} })
		for id, want := range map[string]bool{
			"https://claude.ai/oauth/x":          true,
			"https://www.claude.ai/oauth/x":      false,
			"https://evilclaude.ai/oauth/x":      false,
			"https://claude.ai.evil.com/oauth/x": false,
			"https://insiders.vscode.dev/x":      true,
			"https://a.b.vscode.dev/x":           true,
			"https://vscode.dev/x":               false,
			"https://evilvscode.dev/x":           false,
			"https://chatgpt.com/oauth/client":   true,
			"https://claude.ai:8443/oauth/x":     true,
			"https://claude.ai./oauth/x":         false,
		} {
			if got := r.Trusted(id); got != want {
				t.Errorf("Trusted(%q) = %v, want %v", id, got, want)
			}
		}
	})
	t.Run("configuration errors", func(t *testing.T) {
		f := devFetcher(t, s.testServer, newFakeDNS(), nil)
		for name, cfg := range map[string]ResolverConfig{
			"no fetcher":      {},
			"bad policy":      {Fetcher: f, Policy: "some"},
			"bad pattern":     {Fetcher: f, TrustedHosts: []string{"*.*.example.com"}},
			"ip pattern":      {Fetcher: f, TrustedHosts: []string{"127.0.0.1"}},
			"wildcard inside": {Fetcher: f, TrustedHosts: []string{"a*.example.com"}},
			"min above max":   {Fetcher: f, MinCacheTTL: time.Hour, MaxCacheTTL: time.Minute},
		} {
			if _, err := NewResolver(cfg); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})
}

func TestResolveCache(t *testing.T) {
	type step struct {
		advance time.Duration
		fetches int // total fetches expected after this resolve
	}
	tests := []struct {
		name    string
		headers []string
		steps   []step
	}{
		{"max-age honoured", []string{"Cache-Control", "max-age=600"},
			[]step{{0, 1}, {599 * time.Second, 1}, {2 * time.Second, 2}, {time.Second, 2}}},
		{"max-age below minimum is raised to 5m", []string{"Cache-Control", "max-age=10"},
			[]step{{0, 1}, {299 * time.Second, 1}, {2 * time.Second, 2}}},
		{"max-age above maximum is capped at 24h", []string{"Cache-Control", "public, max-age=31536000"},
			[]step{{0, 1}, {24*time.Hour - time.Second, 1}, {2 * time.Second, 2}}},
		{"huge max-age is capped", []string{"Cache-Control", "max-age=99999999999999999999"},
			[]step{{0, 1}, {24*time.Hour - time.Second, 1}, {2 * time.Second, 2}}},
		{"s-maxage wins for a shared cache", []string{"Cache-Control", "max-age=60000, s-maxage=600"},
			[]step{{0, 1}, {599 * time.Second, 1}, {2 * time.Second, 2}}},
		{"Age is subtracted", []string{"Cache-Control", "max-age=1200", "Age", "600"},
			[]step{{0, 1}, {599 * time.Second, 1}, {2 * time.Second, 2}}},
		{"no-store not cached", []string{"Cache-Control", "no-store"},
			[]step{{0, 1}, {0, 2}, {time.Second, 3}}},
		{"no-cache not cached", []string{"Cache-Control", "max-age=600, no-cache"},
			[]step{{0, 1}, {0, 2}}},
		{"private not cached", []string{"Cache-Control", "private, max-age=600"},
			[]step{{0, 1}, {0, 2}}},
		{"Expires honoured", []string{"Date", "Sun, 22 Nov 2026 05:00:00 GMT", "Expires", "Sun, 22 Nov 2026 07:00:00 GMT"},
			[]step{{0, 1}, {2*time.Hour - time.Second, 1}, {2 * time.Second, 2}}},
		{"invalid Expires means minimum", []string{"Expires", "0"},
			[]step{{0, 1}, {299 * time.Second, 1}, {2 * time.Second, 2}}},
		{"no headers means minimum", nil,
			[]step{{0, 1}, {299 * time.Second, 1}, {2 * time.Second, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDocServer(t)
			clk := newClock()
			s.set("/client", func(w http.ResponseWriter, r *http.Request) {
				serveJSON(doc(s.url("/client"), nil), tt.headers...)(w, r)
			})
			r, _ := newTestResolver(t, s, clk, nil)
			for i, st := range tt.steps {
				clk.Add(st.advance)
				c, err := r.Resolve(context.Background(), s.url("/client"))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if c.Name != "Test Client" {
					t.Fatalf("step %d: client %+v", i, c)
				}
				if got := s.count("/client"); got != st.fetches {
					t.Fatalf("step %d: %d fetches, want %d", i, got, st.fetches)
				}
			}
		})
	}
}

// A failure is never cached as a document: once the negative entry lapses
// (NegativeTTL) the next resolve fetches again and succeeds.
func TestResolveFailureNotCached(t *testing.T) {
	s := newDocServer(t)
	clk := newClock()
	var fail atomic.Bool
	fail.Store(true)
	s.set("/client", func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.Header().Set("Cache-Control", "max-age=3600")
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		serveJSON(doc(s.url("/client"), nil), "Cache-Control", "max-age=3600")(w, r)
	})
	r, _ := newTestResolver(t, s, clk, nil)
	if _, err := r.Resolve(context.Background(), s.url("/client")); !errors.Is(err, ErrFetch) {
		t.Fatalf("first resolve: %v", err)
	}
	fail.Store(false)
	clk.Add(DefaultNegativeTTL)
	if _, err := r.Resolve(context.Background(), s.url("/client")); err != nil {
		t.Fatalf("second resolve: %v", err)
	}
	if s.count("/client") != 2 {
		t.Fatalf("%d fetches", s.count("/client"))
	}
	// Now cached; a later failure of the origin does not matter until expiry.
	fail.Store(true)
	if _, err := r.Resolve(context.Background(), s.url("/client")); err != nil {
		t.Fatalf("cached resolve: %v", err)
	}
	r.Invalidate(s.url("/client"))
	if _, err := r.Resolve(context.Background(), s.url("/client")); !errors.Is(err, ErrFetch) {
		t.Fatalf("resolve after invalidate: %v", err)
	}
}

func TestResolveDocumentChangeChangesFingerprint(t *testing.T) {
	s := newDocServer(t)
	clk := newClock()
	var name atomic.Value
	name.Store("Before")
	s.set("/client", func(w http.ResponseWriter, r *http.Request) {
		serveJSON(doc(s.url("/client"), map[string]any{"client_name": name.Load()}), "Cache-Control", "max-age=600")(w, r)
	})
	r, _ := newTestResolver(t, s, clk, nil)
	a, err := r.Resolve(context.Background(), s.url("/client"))
	if err != nil {
		t.Fatal(err)
	}
	name.Store("After")
	clk.Add(601 * time.Second)
	b, err := r.Resolve(context.Background(), s.url("/client"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint == b.Fingerprint || b.Name != "After" {
		t.Fatalf("fingerprint unchanged after a rename: %q %q", a.Fingerprint, b.Fingerprint)
	}
}

func TestResolveSingleFlight(t *testing.T) {
	const callers = 8
	s := newDocServer(t)
	clk := newClock()
	release := make(chan struct{})
	s.set("/client", func(w http.ResponseWriter, r *http.Request) {
		<-release
		serveJSON(doc(s.url("/client"), nil), "Cache-Control", "no-store")(w, r)
	})
	r, _ := newTestResolver(t, s, clk, nil)
	var joined sync.WaitGroup
	joined.Add(callers)
	r.afterJoin = joined.Done

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Resolve(context.Background(), s.url("/client"))
			errs <- err
		}()
	}
	joined.Wait() // every caller is waiting on a flight
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
	}
	if n := s.count("/client"); n != 1 {
		t.Fatalf("%d fetches for %d concurrent callers, want 1", n, callers)
	}
}

func TestResolveCallerCancelDoesNotFailOthers(t *testing.T) {
	s := newDocServer(t)
	clk := newClock()
	release := make(chan struct{})
	s.set("/client", func(w http.ResponseWriter, r *http.Request) {
		<-release
		serveJSON(doc(s.url("/client"), nil))(w, r)
	})
	r, _ := newTestResolver(t, s, clk, nil)
	var joined sync.WaitGroup
	joined.Add(2)
	r.afterJoin = joined.Done

	ctx, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := r.Resolve(ctx, s.url("/client"))
		firstErr <- err
	}()
	secondErr := make(chan error, 1)
	go func() {
		_, err := r.Resolve(context.Background(), s.url("/client"))
		secondErr <- err
	}()
	joined.Wait()
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrFetch) {
		t.Fatalf("canceled caller: %v", err)
	}
	close(release)
	if err := <-secondErr; err != nil {
		t.Fatalf("other caller: %v", err)
	}
}
