package resourceguard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// grantRevocation is the adapter the Caddy module uses: the guard shares the
// authorization server's store and asks it about the token's grant.
type grantRevocation struct{ s storage.Grants }

func (a grantRevocation) Active(ctx context.Context, grantID, clientID string) (bool, error) {
	g, err := a.s.GetGrant(ctx, grantID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !g.Revoked() && g.ClientID == clientID, nil
}

func openStore(t *testing.T) *bboltstore.Store {
	t.Helper()
	s, err := bboltstore.Open(filepath.Join(t.TempDir(), "mcpauth.db"), bboltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRevocationCheckedOnEveryRequest(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	f := newFixture(t, func(c *Config) { c.Revocation = grantRevocation{store} })
	now := f.clock.Now()
	if err := store.CreateGrant(ctx, storage.Grant{ID: "grant-1", ClientID: "client-abc", Subject: "user-123",
		Scopes: []string{"mcp"}, Resource: testResource, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tok := f.token(nil)

	t.Run("active grant accepted and cached", func(t *testing.T) {
		if w := f.do(bearerReq("POST", testResource, tok)); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
		if f.g.cache.len() != 1 {
			t.Fatalf("cache len %d", f.g.cache.len())
		}
	})
	t.Run("token of another client for the same grant refused", func(t *testing.T) {
		other := f.token(func(h, c map[string]any) { c["client_id"] = "someone-else" })
		w := f.do(bearerReq("POST", testResource, other))
		assertRefused(t, f, w, 401, "invalid_token")
	})
	t.Run("token without sid refused", func(t *testing.T) {
		nosid := f.token(func(h, c map[string]any) { delete(c, "sid") })
		assertRefused(t, f, f.do(bearerReq("POST", testResource, nosid)), 401, "invalid_token")
	})
	t.Run("unknown grant refused", func(t *testing.T) {
		unk := f.token(func(h, c map[string]any) { c["sid"] = "grant-unknown" })
		assertRefused(t, f, f.do(bearerReq("POST", testResource, unk)), 401, "invalid_token")
	})
	t.Run("revoked grant refused on a cache hit", func(t *testing.T) {
		if err := store.RevokeGrant(ctx, "grant-1", "test", now); err != nil {
			t.Fatal(err)
		}
		calls := f.keys.calls.Load()
		assertRefused(t, f, f.do(bearerReq("POST", testResource, tok)), 401, "invalid_token")
		if f.keys.calls.Load() != calls {
			t.Fatal("expected a cache hit (no key lookup)")
		}
	})
	t.Run("store failure is 503", func(t *testing.T) {
		_ = store.Close()
		w := f.do(bearerReq("POST", testResource, tok))
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d", w.Code)
		}
	})
}

func assertRefused(t *testing.T, _ *fixture, w *httptest.ResponseRecorder, status int, errAttr string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d (%s)", w.Code, status, w.Body)
	}
	_, params, err := parseChallenge(w.Header().Get("WWW-Authenticate"))
	if err != nil {
		t.Fatalf("challenge: %v", err)
	}
	if params["error"] != errAttr {
		t.Fatalf("error = %q, want %q", params["error"], errAttr)
	}
}

// TestCacheEviction checks the cache's eviction order: expired entries
// first, in any shard; then, in the inserting shard, the oldest entry not
// hit since it last moved; a hit entry gets one more pass, and when every
// entry was hit the oldest goes.
func TestCacheEviction(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	v := &verifiedToken{cacheUntil: now.Add(time.Hour).UnixNano()}
	key := func(b byte) [32]byte { return [32]byte{b} }
	has := func(c *tokenCache, b byte) bool { return c.get(key(b), "", now) != nil }
	t.Run("a hit entry outlives an older unhit one", func(t *testing.T) {
		c := newTokenCache(2, 0) // one shard below 64
		c.put(key('a'), "", v, 0, now)
		c.put(key('b'), "", v, 0, now)
		if !has(c, 'a') {
			t.Fatal("a missing")
		}
		c.put(key('c'), "", v, 0, now)
		if c.len() != 2 {
			t.Fatalf("len = %d, want 2", c.len())
		}
		// Probing with get marks entries, so check the evicted one last.
		if !has(c, 'c') || !has(c, 'a') || has(c, 'b') {
			t.Fatal("want a and c kept, b evicted")
		}
	})
	t.Run("when all were hit the oldest goes", func(t *testing.T) {
		c := newTokenCache(2, 0)
		c.put(key('a'), "", v, 0, now)
		c.put(key('b'), "", v, 0, now)
		if !has(c, 'b') || !has(c, 'a') {
			t.Fatal("a or b missing")
		}
		c.put(key('c'), "", v, 0, now)
		if !has(c, 'c') || !has(c, 'b') || has(c, 'a') {
			t.Fatal("want b and c kept, a evicted")
		}
	})
	t.Run("expired entries in other shards go before a live one", func(t *testing.T) {
		c := newTokenCache(64, 0) // 16 shards: a key's first byte picks one
		old := &verifiedToken{cacheUntil: now.Add(time.Minute).UnixNano()}
		for i := range 64 {
			c.put([32]byte{0, byte(i)}, "", old, 0, now)
		}
		later := now.Add(2 * time.Minute)
		for i := range 64 {
			c.put([32]byte{1, byte(i)}, "", v, 0, later)
		}
		for i := range 64 {
			if c.get([32]byte{1, byte(i)}, "", later) == nil {
				t.Fatalf("live entry %d evicted while shard 0 held expired ones", i)
			}
		}
		if c.len() != 64 {
			t.Fatalf("len = %d, want 64", c.len())
		}
	})
	t.Run("the mark is spent by one pass", func(t *testing.T) {
		c := newTokenCache(3, 0)
		c.put(key('a'), "", v, 0, now)
		c.put(key('b'), "", v, 0, now)
		c.put(key('c'), "", v, 0, now)
		has(c, 'a')                    // a marked: it moves to the front when d comes
		c.put(key('d'), "", v, 0, now) // evicts b
		c.put(key('e'), "", v, 0, now) // evicts c: a's mark was spent, and it moved ahead of c
		if has(c, 'b') || has(c, 'c') {
			t.Fatal("b and c should be evicted")
		}
		if !has(c, 'a') || !has(c, 'd') || !has(c, 'e') {
			t.Fatal("want a, d and e kept")
		}
	})
}

func TestCache(t *testing.T) {
	t.Run("hit skips verification", func(t *testing.T) {
		f := newFixture(t, nil)
		tok := f.token(nil)
		for range 5 {
			if w := f.do(bearerReq("POST", testResource, tok)); w.Code != 200 {
				t.Fatal(w.Code)
			}
		}
		if n := f.keys.calls.Load(); n != 1 {
			t.Fatalf("key lookups = %d, want 1", n)
		}
	})
	t.Run("flushed on generation change", func(t *testing.T) {
		f := newFixture(t, nil)
		tok := f.token(nil)
		if w := f.do(bearerReq("POST", testResource, tok)); w.Code != 200 {
			t.Fatal(w.Code)
		}
		f.keys.remove("ec1") // key rotated out: the cached verdict must go
		w := f.do(bearerReq("POST", testResource, tok))
		assertRefused(t, f, w, 401, "invalid_token")
		if f.reached.Load() != 1 {
			t.Fatal("upstream reached with a token of a removed key")
		}
	})
	t.Run("failures never cached", func(t *testing.T) {
		f := newFixture(t, nil)
		bad := f.token(func(h, c map[string]any) { c["aud"] = "https://x.example" })
		for range 3 {
			f.do(bearerReq("POST", testResource, bad))
		}
		if f.g.cache.len() != 0 || f.keys.calls.Load() != 3 {
			t.Fatalf("cache len %d, lookups %d", f.g.cache.len(), f.keys.calls.Load())
		}
	})
	t.Run("entry life bounded by max TTL", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.CacheMaxTTL = time.Minute })
		tok := f.token(nil) // expires in 1 h
		f.do(bearerReq("POST", testResource, tok))
		f.clock.Advance(2 * time.Minute)
		f.do(bearerReq("POST", testResource, tok))
		if n := f.keys.calls.Load(); n != 2 {
			t.Fatalf("key lookups = %d, want 2 (entry should have aged out)", n)
		}
	})
	t.Run("entry life bounded by token expiry", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Leeway = time.Second })
		tok := f.token(func(h, c map[string]any) { c["exp"] = f.clock.Now().Add(90 * time.Second).Unix() })
		if w := f.do(bearerReq("POST", testResource, tok)); w.Code != 200 {
			t.Fatal(w.Code)
		}
		f.clock.Advance(2 * time.Minute)
		assertRefused(t, f, f.do(bearerReq("POST", testResource, tok)), 401, "invalid_token")
	})
	// The size bounds the whole cache: 1,000 active tokens fit a cache of
	// 1,000 although the 16 shards hold unequal shares (with a per-shard
	// bound, an overfull shard missed on every round: 1,474 lookups).
	t.Run("1000 tokens fit a cache of 1000", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.CacheSize = 1000 })
		toks := make([]string, 1000)
		for i := range toks {
			toks[i] = f.token(func(h, c map[string]any) { c["jti"] = fmt.Sprint(i) })
		}
		for range 2 {
			for _, tok := range toks {
				if w := f.do(bearerReq("POST", testResource, tok)); w.Code != 200 {
					t.Fatal(w.Code)
				}
			}
		}
		if n := f.keys.calls.Load(); n != 1000 {
			t.Fatalf("key lookups = %d, want 1000 (one per token)", n)
		}
	})
	// Once the cache is full of tokens nobody sends any more, new tokens
	// still fit: expired entries leave first, so the shards' shares follow
	// the live tokens and not the ones the cache happened to fill with.
	t.Run("expired entries make room in a full cache", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.CacheSize = 100; c.CacheMaxTTL = time.Minute })
		mint := func(prefix string) []string {
			toks := make([]string, 100)
			for i := range toks {
				toks[i] = f.token(func(h, c map[string]any) { c["jti"] = fmt.Sprint(prefix, i) })
			}
			return toks
		}
		old := mint("old-")
		for _, tok := range old {
			f.do(bearerReq("POST", testResource, tok))
		}
		f.clock.Advance(2 * time.Minute)
		fresh := mint("new-")
		for range 2 {
			for _, tok := range fresh {
				if w := f.do(bearerReq("POST", testResource, tok)); w.Code != 200 {
					t.Fatal(w.Code)
				}
			}
		}
		if n := f.keys.calls.Load(); n != 200 {
			t.Fatalf("key lookups = %d, want 200 (one per token)", n)
		}
	})
	t.Run("bounded size", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.CacheSize = 100 })
		for i := range 300 {
			tok := f.token(func(h, c map[string]any) { c["jti"] = fmt.Sprint(i) })
			f.do(bearerReq("POST", testResource, tok))
		}
		if n := f.g.cache.len(); n > 112 || n < 50 {
			t.Fatalf("cache holds %d entries for a size of 100", n)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.CacheSize = -1 })
		tok := f.token(nil)
		f.do(bearerReq("POST", testResource, tok))
		f.do(bearerReq("POST", testResource, tok))
		if f.keys.calls.Load() != 2 {
			t.Fatal("cache not disabled")
		}
	})
}

func TestScopes(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Scopes = []string{"todo:read"}
		c.MethodScopes = map[string][]string{
			"tools/call":                   {"todo:call"},
			"tools/call:delete_todo":       {"todo:admin"},
			"resources/read:todo://secret": {"todo:secret"},
		}
		c.ScopeHierarchy = map[string][]string{
			"todo:admin": {"todo:write"},
			"todo:write": {"todo:read", "todo:call"},
		}
	})
	call := func(name string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, name)
	}
	cases := []struct {
		name      string
		method    string
		scope     string
		body      string
		status    int
		errAttr   string
		needScope string // expected challenge scope attribute
	}{
		{"route scope present", "POST", "todo:read", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, 200, "", ""},
		{"route scope missing", "POST", "other", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, 403, "insufficient_scope", "todo:read"},
		{"method scope missing", "POST", "todo:read", call("add_todo"), 403, "insufficient_scope", "todo:read todo:call"},
		{"method scope present", "POST", "todo:read todo:call", call("add_todo"), 200, "", ""},
		{"tool scope missing", "POST", "todo:read todo:call", call("delete_todo"), 403, "insufficient_scope", "todo:read todo:call todo:admin"},
		{"hierarchy: admin implies all", "POST", "todo:admin", call("delete_todo"), 200, "", ""},
		{"hierarchy: write implies read and call", "POST", "todo:write", call("add_todo"), 200, "", ""},
		{"hierarchy: write does not imply admin", "POST", "todo:write", call("delete_todo"), 403, "insufficient_scope", "todo:read todo:call todo:admin"},
		{"batch needs the union", "POST", "todo:read todo:call", `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},` + call("delete_todo") + `]`, 403, "insufficient_scope", "todo:read todo:call todo:admin"},
		{"batch allowed", "POST", "todo:admin", `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},` + call("delete_todo") + `]`, 200, "", ""},
		{"resource uri scope", "POST", "todo:read", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"todo://secret"}}`, 403, "insufficient_scope", "todo:read todo:secret"},
		{"response message needs route scope only", "POST", "todo:read", `{"jsonrpc":"2.0","id":1,"result":{}}`, 200, "", ""},
		{"GET stream never reads a body", "GET", "todo:read", "", 200, "", ""},
		{"case-folded method refused when ambiguous", "POST", "todo:admin", `{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"delete_todo"}}`, 400, "invalid_request", ""},
		{"case-folded method alone is the method", "POST", "todo:read", `{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","params":{"name":"x"}}`, 403, "insufficient_scope", "todo:read todo:call"},
		{"duplicate tool name refused", "POST", "todo:admin", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"delete_todo"}}`, 400, "invalid_request", ""},
		{"escaped member name", "POST", "todo:read todo:call", `{"jsonrpc":"2.0","id":1,"\u006dethod":"tools/call","params":{"n\u0061me":"delete_todo"}}`, 403, "insufficient_scope", "todo:read todo:call todo:admin"},
		{"malformed JSON", "POST", "todo:admin", `{"method":`, 400, "invalid_request", ""},
		{"trailing data", "POST", "todo:admin", `{"method":"tools/list"} {"method":"tools/call"}`, 400, "invalid_request", ""},
		{"method not a string", "POST", "todo:admin", `{"method":1}`, 400, "invalid_request", ""},
		{"empty body", "POST", "todo:read", ``, 200, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := f.token(func(h, cl map[string]any) { cl["scope"] = c.scope })
			r := httptest.NewRequest(c.method, testResource, strings.NewReader(c.body))
			r.Header.Set("Authorization", "Bearer "+tok)
			r.Header.Set("Content-Type", "application/json")
			before := f.reached.Load()
			w := f.do(r)
			if w.Code != c.status {
				t.Fatalf("status = %d, want %d (%s)", w.Code, c.status, w.Body)
			}
			if reached := f.reached.Load() > before; reached != (c.status == 200) {
				t.Fatalf("upstream reached = %v", reached)
			}
			if c.status == 200 {
				f.mu.Lock()
				got := f.bodies[len(f.bodies)-1]
				f.mu.Unlock()
				if c.method == "POST" && got != c.body {
					t.Fatalf("upstream body = %q, want %q", got, c.body)
				}
				return
			}
			_, params, err := parseChallenge(w.Header().Get("WWW-Authenticate"))
			if err != nil {
				t.Fatal(err)
			}
			if params["error"] != c.errAttr {
				t.Fatalf("error = %q, want %q", params["error"], c.errAttr)
			}
			if c.needScope != "" && params["scope"] != c.needScope {
				t.Fatalf("scope = %q, want %q", params["scope"], c.needScope)
			}
		})
	}
	t.Run("body too large", func(t *testing.T) {
		g := newFixture(t, func(c *Config) {
			c.MethodScopes = map[string][]string{"tools/call": {"x"}}
			c.MaxBodyBytes = 64
		})
		r := httptest.NewRequest("POST", testResource, strings.NewReader(strings.Repeat(" ", 65)+"{}"))
		r.Header.Set("Authorization", "Bearer "+g.token(nil))
		if w := g.do(r); w.Code != http.StatusRequestEntityTooLarge || g.reached.Load() != 0 {
			t.Fatalf("status %d reached %d", w.Code, g.reached.Load())
		}
	})
	t.Run("body not read without method scopes", func(t *testing.T) {
		g := newFixture(t, nil)
		r := httptest.NewRequest("POST", testResource, strings.NewReader("not json at all"))
		r.Header.Set("Authorization", "Bearer "+g.token(nil))
		if w := g.do(r); w.Code != 200 || g.bodies[0] != "not json at all" {
			t.Fatalf("status %d body %q", w.Code, g.bodies)
		}
	})
}

func TestOrigin(t *testing.T) {
	cases := []struct {
		name    string
		allowed []string
		origins []string
		status  int
	}{
		{"no Origin header", nil, nil, 200},
		{"own origin allowed by default", nil, []string{"https://mcp.example.com"}, 200},
		{"own origin with explicit default port", nil, []string{"https://mcp.example.com:443"}, 200},
		{"other origin refused by default", nil, []string{"https://evil.example"}, 403},
		{"rebinding-style origin refused", nil, []string{"http://mcp.example.com"}, 403},
		{"null origin refused", nil, []string{"null"}, 403},
		{"empty origin refused", nil, []string{""}, 403},
		{"two Origin headers refused", nil, []string{"https://mcp.example.com", "https://mcp.example.com"}, 403},
		{"listed origin allowed", []string{"http://localhost:6274"}, []string{"http://localhost:6274"}, 200},
		{"own origin not implied by a list", []string{"http://localhost:6274"}, []string{"https://mcp.example.com"}, 403},
		{"unlisted port refused", []string{"http://localhost:6274"}, []string{"http://localhost:6275"}, 403},
		{"wildcard allows any", []string{"*"}, []string{"https://anything.example"}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config) { cfg.AllowedOrigins = c.allowed })
			r := bearerReq("POST", testResource, f.token(nil))
			for _, o := range c.origins {
				r.Header.Add("Origin", o)
			}
			w := f.do(r)
			if w.Code != c.status {
				t.Fatalf("status = %d, want %d", w.Code, c.status)
			}
			if c.status != 200 {
				if f.reached.Load() != 0 {
					t.Fatal("upstream reached")
				}
				if w.Header().Get("WWW-Authenticate") != "" {
					t.Fatal("origin refusal carries a bearer challenge")
				}
			}
		})
	}
}

func TestUpstreamNeverSeesTokenOrForgedIdentity(t *testing.T) {
	f := newFixture(t, nil)
	r := bearerReq("POST", testResource, f.token(func(h, c map[string]any) { delete(c, "email") }))
	r.Header.Add("X-Auth-Subject", "admin")
	r.Header.Add("X-Auth-Subject", "root")
	r.Header.Set("x-auth-client", "forged")
	r.Header.Set("X-Auth-Scopes", "everything")
	r.Header.Set("X-Auth-Email", "ceo@example.com")
	if w := f.do(r); w.Code != 200 {
		t.Fatal(w.Code)
	}
	up := f.seen[0]
	if v := up.Header.Values("Authorization"); len(v) != 0 {
		t.Fatalf("upstream saw Authorization %q", v)
	}
	want := map[string][]string{
		"X-Auth-Subject": {"user-123"},
		"X-Auth-Client":  {"client-abc"},
		"X-Auth-Scopes":  {"mcp todo:read"},
		"X-Auth-Email":   nil, // no email claim: the forged copy is deleted, nothing set
	}
	for h, v := range want {
		if got := up.Header.Values(h); strings.Join(got, "|") != strings.Join(v, "|") {
			t.Fatalf("%s = %q, want %q", h, got, v)
		}
	}
	if p, ok := FromContext(up.Context()); !ok || p.Subject != "user-123" {
		t.Fatalf("principal in context: %+v %v", p, ok)
	}
}

// TestIdentityHeaderNamesAnyCase: identity header names configured in any
// case (canonicalized once, in New) still replace every client-sent copy,
// whatever its spelling, in the guard and in the exported PrepareUpstream.
func TestIdentityHeaderNamesAnyCase(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Identity = IdentityHeaders{Subject: "x-auth-subject", ClientID: "X-AUTH-CLIENT", Scopes: "x-Auth-scopes"}
	})
	r := bearerReq("POST", testResource, f.token(nil))
	r.Header.Add("X-Auth-Subject", "admin")
	r.Header.Set("x-auth-client", "forged")
	if w := f.do(r); w.Code != 200 {
		t.Fatal(w.Code)
	}
	up := f.seen[0].Header
	if got := up["X-Auth-Subject"]; len(got) != 1 || got[0] != "user-123" {
		t.Fatalf("X-Auth-Subject = %q", got)
	}
	if got := up["X-Auth-Client"]; len(got) != 1 || got[0] != "client-abc" {
		t.Fatalf("X-Auth-Client = %q", got)
	}
	if got := up["X-Auth-Scopes"]; len(got) != 1 || got[0] != "mcp todo:read" {
		t.Fatalf("X-Auth-Scopes = %q", got)
	}
	for k := range up {
		if strings.EqualFold(k, "x-auth-subject") && k != "X-Auth-Subject" || strings.EqualFold(k, "x-auth-client") && k != "X-Auth-Client" {
			t.Fatalf("a second spelling reached the upstream: %q", k)
		}
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Sub", "forged")
	PrepareUpstream(r, &Principal{Subject: "s"}, IdentityHeaders{Subject: "x-sub"})
	if got := r.Header["X-Sub"]; len(got) != 1 || got[0] != "s" || len(r.Header) != 1 {
		t.Fatalf("exported PrepareUpstream: %v", r.Header)
	}
}

// TestStreamingIsNotBuffered runs the guard in a real HTTP server in front of
// an SSE upstream that sends one event, then waits until the client has read
// it before sending the next: a buffering guard would deadlock the test
// (bounded by the context deadline, not a timed assertion).
func TestStreamingIsNotBuffered(t *testing.T) {
	f := newFixture(t, nil)
	clientGotFirst := make(chan struct{})
	upstreamDone := make(chan struct{})
	sse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(upstreamDone)
		if r.Header.Get("Authorization") != "" {
			t.Error("upstream saw Authorization")
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-clientGotFirst:
		case <-r.Context().Done():
			return
		}
		for i := range 50 {
			fmt.Fprintf(w, "data: event-%d\n\n", i)
			w.(http.Flusher).Flush()
		}
	})
	srv := httptest.NewServer(f.g.Wrap(sse))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+f.token(nil))
	req.Header.Set("Accept", "text/event-stream")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	select {
	case <-upstreamDone:
		t.Fatal("upstream finished before the client read the first event")
	default:
	}
	close(clientGotFirst)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(rest), "data: event-"); n != 50 {
		t.Fatalf("got %d events", n)
	}
}

func TestPrepareUpstreamDirect(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer x")
	r.Header.Set("X-Sub", "forged")
	PrepareUpstream(r, &Principal{Subject: "s", Scopes: []string{"a", "b"}}, IdentityHeaders{Subject: "X-Sub", Scopes: "X-Scopes"})
	if r.Header.Get("Authorization") != "" || r.Header.Get("X-Sub") != "s" || r.Header.Get("X-Scopes") != "a b" {
		t.Fatalf("headers %v", r.Header)
	}
}

func TestCORS(t *testing.T) {
	cases := []struct {
		name      string
		cors      bool
		method    string
		origin    string
		preflight bool
		status    int
		acao      string
	}{
		{"off: preflight is challenged", false, "OPTIONS", "http://localhost:6274", true, 401, ""},
		{"on: preflight answered for an allowed origin", true, "OPTIONS", "http://localhost:6274", true, 204, "http://localhost:6274"},
		{"on: preflight from another origin refused", true, "OPTIONS", "https://evil.example", true, 403, ""},
		{"on: challenge readable by an allowed origin", true, "POST", "http://localhost:6274", false, 401, "http://localhost:6274"},
		{"on: plain OPTIONS is not a preflight", true, "OPTIONS", "http://localhost:6274", false, 401, "http://localhost:6274"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config) { cfg.CORS = c.cors; cfg.AllowedOrigins = []string{"http://localhost:6274"} })
			r := httptest.NewRequest(c.method, testResource, nil)
			r.Header.Set("Origin", c.origin)
			if c.preflight {
				r.Header.Set("Access-Control-Request-Method", "POST")
				r.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
			}
			w := f.do(r)
			if w.Code != c.status || w.Header().Get("Access-Control-Allow-Origin") != c.acao || f.reached.Load() != 0 {
				t.Fatalf("status %d acao %q reached %d", w.Code, w.Header().Get("Access-Control-Allow-Origin"), f.reached.Load())
			}
			if w.Header().Get("Access-Control-Allow-Credentials") != "" {
				t.Fatal("credentials allowed")
			}
			if c.acao != "" && !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
				t.Fatal("WWW-Authenticate not exposed")
			}
		})
	}
}

// TestCacheConcurrentRotation: while many requests use a token, its key is
// removed; once the removal is done, no request is accepted, whatever the
// interleaving of cache fills and flushes (run with -race).
func TestCacheConcurrentRotation(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				f.g.Check(bearerReq("POST", testResource, tok))
			}
		}()
	}
	for range 20 {
		f.g.Check(bearerReq("POST", testResource, tok))
	}
	f.keys.remove("ec1")
	for i := range 200 {
		if p, c := f.g.Check(bearerReq("POST", testResource, tok)); c == nil {
			t.Fatalf("request %d accepted after key removal: %+v", i, p)
		}
	}
	close(stop)
	for range 8 {
		<-done
	}
}

func TestRevocationFunc(t *testing.T) {
	revoked := map[string]bool{"g2": true}
	f := newFixture(t, func(c *Config) {
		c.Revocation = RevocationFunc(func(_ context.Context, grantID, clientID string) (bool, error) {
			return !revoked[grantID] && clientID == "client-abc", nil
		})
	})
	if w := f.do(bearerReq("POST", testResource, f.token(nil))); w.Code != 200 {
		t.Fatal(w.Code)
	}
	assertRefused(t, f, f.do(bearerReq("POST", testResource, f.token(func(h, c map[string]any) { c["sid"] = "g2" }))), 401, "invalid_token")
}

// TestEmailHeaderOnlyWhenVerified is requirement 36: the email header goes
// upstream only for a token that asserts email_verified true.
func TestEmailHeaderOnlyWhenVerified(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(c map[string]any)
		want string
	}{
		{"verified", func(c map[string]any) {}, "user@example.com"},
		{"no email_verified claim", func(c map[string]any) { delete(c, "email_verified") }, ""},
		{"email_verified false", func(c map[string]any) { c["email_verified"] = false }, ""},
		{"email_verified as a string", func(c map[string]any) { c["email_verified"] = "true" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			r := bearerReq("POST", testResource, f.token(func(h, c map[string]any) { tc.mod(c) }))
			r.Header.Set("X-Auth-Email", "forged@example.com")
			if w := f.do(r); w.Code != 200 {
				t.Fatal(w.Code)
			}
			if got := strings.Join(f.seen[0].Header.Values("X-Auth-Email"), "|"); got != tc.want {
				t.Fatalf("X-Auth-Email = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestMalformedBearerWithCache: the Bearer token's characters are checked
// on a cache miss only (a hit is a token identical to a checked one). A
// malformed token is refused the same way with the cache on or off, cold or
// after a valid token was cached, including the valid token with bytes added.
func TestMalformedBearerWithCache(t *testing.T) {
	for _, size := range []int{0, -1} { // default cache, no cache
		f := newFixture(t, func(c *Config) { c.CacheSize = size })
		good := f.token(nil)
		bad := []string{"a b", "a\x01b", "a,b", good + " x", good + "\x7f", good + "==x", "é" + good, good[:10] + "\"" + good[11:]}
		for round := range 2 {
			for _, tok := range bad {
				r := httptest.NewRequest("POST", testResource, nil)
				r.Header["Authorization"] = []string{"Bearer " + tok}
				_, c := f.g.Check(r)
				if c == nil || c.Status != 401 || c.Error != ErrorInvalidToken || c.Description != "malformed bearer token" {
					t.Fatalf("cache %d round %d: %q: %+v", size, round, tok, c)
				}
			}
			// The valid token, cached after the first round, is still accepted.
			if w := f.do(bearerReq("POST", testResource, good)); w.Code != 200 {
				t.Fatalf("cache %d: valid token: %d", size, w.Code)
			}
		}
		if n := f.keys.calls.Load(); size == 0 && n != 1 || size < 0 && n != 2 {
			t.Fatalf("cache %d: %d key lookups (malformed tokens must not reach the keys)", size, n)
		}
	}
}

// TestCacheEntryLayout keeps what a cache hit reads (cacheEntry's header,
// v.scopes and v.p) in the first three cache lines of an entry, and the
// entry in the allocator's 320-byte size class, whose objects start on a
// 64-byte line: a field added in the wrong place would spread a hit over
// one more cold line per token.
func TestCacheEntryLayout(t *testing.T) {
	var e cacheEntry
	hot := unsafe.Offsetof(e.v) + unsafe.Offsetof(e.v.p) + unsafe.Sizeof(e.v.p)
	if hot > 192 {
		t.Errorf("a hit reads the entry's first %d bytes, want at most 192 (three lines)", hot)
	}
	if p := unsafe.Offsetof(e.v.p); unsafe.Offsetof(e.v.scopes) > p || unsafe.Offsetof(e.v.bound) > p || unsafe.Offsetof(e.v.used) > p {
		t.Errorf("verifiedToken's scopes, bound and used must come before p, inside the lines a hit reads")
	}
	if size := unsafe.Sizeof(e); size <= 288 || size > 320 {
		t.Errorf("cacheEntry is %d bytes, want 289-320 (the 320-byte size class)", size)
	}
}

// TestCacheReplaceKeepsReadersToken: a put over a cached key makes a new
// entry; the token an earlier hit returned is never written again (a
// request may still be reading it).
func TestCacheReplaceKeepsReadersToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newTokenCache(8, 0)
	key := [32]byte{7}
	c.put(key, "", &verifiedToken{p: Principal{Subject: "old"}, cacheUntil: now.Add(time.Hour).UnixNano()}, 0, now)
	held := c.get(key, "", now)
	if held == nil || held.p.Subject != "old" {
		t.Fatalf("get = %+v, want the old token", held)
	}
	c.put(key, "", &verifiedToken{p: Principal{Subject: "new"}, cacheUntil: now.Add(time.Hour).UnixNano()}, 0, now)
	if held.p.Subject != "old" {
		t.Fatalf("the held token changed to %q", held.p.Subject)
	}
	if got := c.get(key, "", now); got == nil || got.p.Subject != "new" || got == held {
		t.Fatalf("get after replace = %+v, want the new token", got)
	}
	if c.len() != 1 {
		t.Fatalf("len = %d, want 1", c.len())
	}
	// An entry past its end is not served (until, in nanoseconds).
	if c.get(key, "", now.Add(time.Hour)) != nil {
		t.Fatal("an expired entry was served")
	}
}

// TestCacheForgeryWithCachedSignature: the cache is keyed by a token's
// signature and matches its header and payload byte for byte. A cached
// token's signature under other claims, or its claims under another
// signature, is verified from scratch and refused; the cached token still
// works as itself.
func TestCacheForgeryWithCachedSignature(t *testing.T) {
	f := newFixture(t, nil)
	good := f.token(nil)
	other := f.token(func(_, c map[string]any) { c["sub"] = "mallory" })
	if w := f.do(bearerReq("POST", testResource, good)); w.Code != 200 {
		t.Fatalf("good token: %d", w.Code)
	}
	gi, oi := strings.LastIndexByte(good, '.'), strings.LastIndexByte(other, '.')
	for name, forged := range map[string]string{
		"other claims, cached signature": other[:oi+1] + good[gi+1:],
		"cached claims, other signature": good[:gi+1] + other[oi+1:],
	} {
		assertRefused(t, f, f.do(bearerReq("POST", testResource, forged)), 401, "invalid_token")
		if f.g.cache.len() != 1 {
			t.Fatalf("%s: cache holds %d entries, want the good token's alone", name, f.g.cache.len())
		}
	}
	if w := f.do(bearerReq("POST", testResource, good)); w.Code != 200 {
		t.Fatalf("good token after the forgeries: %d", w.Code)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.seen); n != 2 || f.seen[1].Header.Get("X-Auth-Subject") != "user-123" {
		t.Fatalf("upstream saw %d requests (want 2, the good token's), subject %q", n, f.seen[n-1].Header.Get("X-Auth-Subject"))
	}
}

// TestTokenKey: the key hashes the signature alone; claims is the rest,
// with the dot, so that no two tokens share both.
func TestTokenKey(t *testing.T) {
	k1, c1 := tokenKey("h.p.sig")
	k2, c2 := tokenKey("h.p2.sig")
	k3, c3 := tokenKey("h.p.sig2")
	if k1 != k2 || c1 == c2 || k1 == k3 || c1 != c3 || c1 != "h.p." {
		t.Fatalf("keys/claims: %x %q, %x %q, %x %q", k1, c1, k2, c2, k3, c3)
	}
	if k, c := tokenKey("nodot"); c != "" || k == k1 {
		t.Fatalf("a token without a dot: %x %q", k, c)
	}
	if _, c := tokenKey(""); c != "" {
		t.Fatalf("empty token: claims %q", c)
	}
}
