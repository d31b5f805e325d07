package cimd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
)

// loopbackDNS resolves every name to 127.0.0.1 (the test servers' address).
func loopbackDNS(_ context.Context, _ string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// hostDocServer serves, at /doc/…, a valid document for whatever URL was
// asked (host and path as requested), 404 elsewhere, and counts requests
// per path.
func hostDocServer(t *testing.T, delay time.Duration) *docServer {
	t.Helper()
	s := &docServer{docs: map[string]func(http.ResponseWriter, *http.Request){}, perPath: map[string]int{}}
	s.testServer = newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.perPath[r.URL.Path]++
		s.mu.Unlock()
		if !strings.HasPrefix(r.URL.Path, "/doc/") {
			http.NotFound(w, r)
			return
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				// The client gave up: abort the connection. Returning would
				// send an empty 200, which a client still reading could
				// take for a (non-JSON) answer instead of its timeout.
				panic(http.ErrAbortHandler)
			}
		}
		serveJSON(doc("https://"+r.Host+r.URL.Path, nil))(w, r)
	}))
	return s
}

// budgetResolver is a resolver with the production budgets (unless mod
// changes them), every name resolving to the test server.
func budgetResolver(t *testing.T, s *testServer, clk *clock, fmod func(*FetcherConfig), rmod func(*ResolverConfig)) *Resolver {
	t.Helper()
	cfg := FetcherConfig{AllowLoopback: true, ExtraCAs: s.pool, LookupIP: loopbackDNS, Now: clk.Now}
	if fmod != nil {
		fmod(&cfg)
	}
	f, err := NewFetcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	rc := ResolverConfig{Fetcher: f, TrustedHosts: []string{"example.com", "*.example.com"}, Now: clk.Now}
	if rmod != nil {
		rmod(&rc)
	}
	r, err := NewResolver(rc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func isTemporary(err error) (time.Duration, bool) {
	var te interface {
		Temporary() bool
		RetryAfter() time.Duration
	}
	if errors.As(err, &te) && te.Temporary() {
		return te.RetryAfter(), true
	}
	return 0, false
}

// A flood of junk paths under a trusted host, from one requester (one IPv4
// address, then many addresses of one IPv6 /64), costs that requester its
// own budget only: another requester still resolves a new id on the same
// host, and a known-good id still refreshes even when many requesters have
// drained the host's bucket.
func TestJunkFloodFromOneRequesterDoesNotBlockOthers(t *testing.T) {
	s := hostDocServer(t, 0)
	clk := newClock()
	r := budgetResolver(t, s.testServer, clk, nil, nil)
	ctx := context.Background()

	known := s.url("/doc/known")
	if _, err := r.ResolveFrom(ctx, known, "192.0.2.1"); err != nil {
		t.Fatalf("known id: %v", err)
	}
	clk.Add(DefaultMinCacheTTL + time.Minute) // its cache entry is now stale; buckets refilled

	const flood = 200
	var junkErrs, limited int
	for i := range flood {
		_, err := r.ResolveFrom(ctx, s.url(fmt.Sprintf("/junk/%d", i)), "203.0.113.7")
		if err == nil {
			t.Fatalf("junk %d resolved", i)
		}
		junkErrs++
		if errors.Is(err, ErrRateLimited) {
			limited++
		}
	}
	// Another requester: a new, valid id on the same host resolves.
	if _, err := r.ResolveFrom(ctx, s.url("/doc/new"), "198.51.100.9"); err != nil {
		t.Fatalf("other requester, new id: %v", err)
	}
	junkFetched := 0
	for i := range flood {
		junkFetched += s.count(fmt.Sprintf("/junk/%d", i))
	}
	if junkFetched > DefaultPerRequesterBurst {
		t.Fatalf("one requester's flood cost %d fetches, want at most %d", junkFetched, DefaultPerRequesterBurst)
	}
	if limited < flood-DefaultPerRequesterBurst {
		t.Fatalf("only %d of %d junk resolutions were throttled", limited, junkErrs)
	}

	// One IPv6 /64, many addresses: one requester (on another host of the
	// domain, whose own bucket would allow more).
	other := "https://other.example.com:" + s.port
	for i := range flood {
		_, err := r.ResolveFrom(ctx, other+fmt.Sprintf("/junk6/%d", i), fmt.Sprintf("2001:db8:aa:bb::%x", i+1))
		if err == nil {
			t.Fatalf("junk6 %d resolved", i)
		}
	}
	junkFetched = 0
	for i := range flood {
		junkFetched += s.count(fmt.Sprintf("/junk6/%d", i))
	}
	if junkFetched > DefaultPerRequesterBurst {
		t.Fatalf("one /64's flood cost %d fetches, want at most %d", junkFetched, DefaultPerRequesterBurst)
	}

	// Many requesters drain the host's bucket entirely.
	for i := range 40 {
		r.ResolveFrom(ctx, s.url(fmt.Sprintf("/junkmany/%d", i)), fmt.Sprintf("2001:db8:%x::1", 0x100+i))
	}
	_, err := r.ResolveFrom(ctx, s.url("/doc/new2"), "198.51.100.10")
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("new id after the host bucket is drained: %v (want rate limited)", err)
	}
	if ra, ok := isTemporary(err); !ok || ra < time.Second {
		t.Fatalf("throttled resolution: temporary=%v retry-after=%v", ok, ra)
	}
	// The known-good id still refreshes: a fetch really happens.
	before := s.count("/doc/known")
	if _, err := r.ResolveFrom(ctx, known, "198.51.100.11"); err != nil {
		t.Fatalf("known-good id under the flood: %v", err)
	}
	if s.count("/doc/known") != before+1 {
		t.Fatalf("known-good id was not refetched (%d -> %d)", before, s.count("/doc/known"))
	}
}

// A URL that failed is remembered for NegativeTTL: asking again costs no
// fetch (requests counted at the server), then it is fetched again.
func TestNegativeCacheCostsNoFetch(t *testing.T) {
	s := newDocServer(t)
	clk := newClock()
	var down atomic.Bool
	down.Store(true)
	s.set("/flaky", func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		serveJSON(doc(s.url("/flaky"), nil))(w, r)
	})
	r := budgetResolver(t, s.testServer, clk, nil, func(c *ResolverConfig) { c.NegativeTTL = 10 * time.Second })
	ctx := context.Background()

	for i := range 5 {
		_, err := r.ResolveFrom(ctx, s.url("/missing"), "192.0.2.1")
		if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "status 404") {
			t.Fatalf("missing %d: %v", i, err)
		}
		if _, tmp := isTemporary(err); tmp {
			t.Fatalf("404 is temporary")
		}
	}
	if n := s.count("/missing"); n != 1 {
		t.Fatalf("5 resolutions of a missing document cost %d fetches, want 1", n)
	}
	for i := range 5 {
		_, err := r.ResolveFrom(ctx, s.url("/flaky"), fmt.Sprintf("192.0.2.%d", 10+i))
		ra, tmp := isTemporary(err)
		if !errors.Is(err, ErrFetch) || !tmp || ra < time.Second || ra > 10*time.Second {
			t.Fatalf("flaky %d: %v (temporary %v, retry after %v)", i, err, tmp, ra)
		}
	}
	if n := s.count("/flaky"); n != 1 {
		t.Fatalf("5 resolutions of a failing document cost %d fetches, want 1", n)
	}
	down.Store(false)
	clk.Add(11 * time.Second)
	if _, err := r.ResolveFrom(ctx, s.url("/flaky"), "192.0.2.1"); err != nil {
		t.Fatalf("after the negative entry expired: %v", err)
	}
	if _, err := r.ResolveFrom(ctx, s.url("/missing"), "192.0.2.1"); !errors.Is(err, ErrFetch) {
		t.Fatalf("missing after expiry: %v", err)
	}
	if s.count("/flaky") != 2 || s.count("/missing") != 2 {
		t.Fatalf("after expiry: %d and %d fetches, want 2 and 2", s.count("/flaky"), s.count("/missing"))
	}
	// Invalidate forgets the failure too.
	r.Invalidate(s.url("/missing"))
	r.ResolveFrom(ctx, s.url("/missing"), "192.0.2.1")
	if s.count("/missing") != 3 {
		t.Fatalf("invalidate kept the negative entry")
	}
}

// A known-good id whose refresh fails transiently is served from the stale
// entry; a permanent failure (the document is gone) is not papered over.
func TestStaleServedWhenRefreshFailsTransiently(t *testing.T) {
	s := newDocServer(t)
	clk := newClock()
	var status atomic.Int64
	status.Store(200)
	s.set("/client", func(w http.ResponseWriter, r *http.Request) {
		if st := int(status.Load()); st != 200 {
			http.Error(w, "no", st)
			return
		}
		serveJSON(doc(s.url("/client"), nil))(w, r)
	})
	r := budgetResolver(t, s.testServer, clk, nil, nil)
	ctx := context.Background()
	if _, err := r.ResolveFrom(ctx, s.url("/client"), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	clk.Add(DefaultMinCacheTTL + time.Second)
	status.Store(http.StatusBadGateway)
	c, err := r.ResolveFrom(ctx, s.url("/client"), "192.0.2.1")
	if err != nil || c.ID != s.url("/client") {
		t.Fatalf("stale not served on 502: %v", err)
	}
	if s.count("/client") != 2 {
		t.Fatalf("refresh not attempted: %d fetches", s.count("/client"))
	}
	clk.Add(DefaultMaxStale + DefaultNegativeTTL)
	if _, err := r.ResolveFrom(ctx, s.url("/client"), "192.0.2.1"); !errors.Is(err, ErrFetch) {
		t.Fatalf("stale served past MaxStale: %v", err)
	}
	// Fresh again, then withdrawn (404): the stale entry is dropped.
	status.Store(200)
	clk.Add(DefaultNegativeTTL + time.Second)
	if _, err := r.ResolveFrom(ctx, s.url("/client"), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	clk.Add(DefaultMinCacheTTL + time.Second)
	status.Store(http.StatusNotFound)
	if _, err := r.ResolveFrom(ctx, s.url("/client"), "192.0.2.1"); !errors.Is(err, ErrFetch) {
		t.Fatalf("withdrawn document served stale: %v", err)
	}
}

// tarpit accepts TCP connections and never answers (not even the TLS
// handshake) until the test ends.
type tarpit struct {
	ln       net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted atomic.Int64
}

func newTarpit(t *testing.T) *tarpit {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tarpit{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tp.mu.Lock()
			tp.conns = append(tp.conns, c)
			tp.mu.Unlock()
			tp.accepted.Add(1)
		}
	}()
	t.Cleanup(tp.close)
	return tp
}

func (tp *tarpit) close() {
	tp.ln.Close()
	tp.mu.Lock()
	for _, c := range tp.conns {
		c.Close()
	}
	tp.mu.Unlock()
}

func (tp *tarpit) port() string {
	_, p, _ := net.SplitHostPort(tp.ln.Addr().String())
	return p
}

// Tarpit hosts (policy any) named by many requesters cannot take every fetch
// slot: a new id on a good host and a known-good id's refresh still resolve.
func TestTarpitDoesNotStarveGoodHost(t *testing.T) {
	s := hostDocServer(t, 0)
	tp := newTarpit(t)
	clk := newClock()
	r := budgetResolver(t, s.testServer, clk, func(c *FetcherConfig) {
		c.MaxConcurrency = 6
		c.UntrustedTimeout = 8 * time.Second // long enough to hold the slots during the test
	}, func(c *ResolverConfig) { c.Policy = PolicyAny })
	ctx := context.Background()
	known := s.url("/doc/known")
	if _, err := r.ResolveFrom(ctx, known, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	clk.Add(DefaultMinCacheTTL + time.Minute)

	// Many requesters, many subdomains of one tarpit domain, then many
	// tarpit domains: every general slot they can get is held.
	var wg sync.WaitGroup
	start := func(host string, i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.ResolveFrom(ctx, "https://"+host+":"+tp.port()+"/client", fmt.Sprintf("2001:db8:%x::1", i))
		}()
	}
	for i := range 12 {
		start(fmt.Sprintf("h%d.tarpit.test", i), i)
	}
	deadline := time.Now().Add(10 * time.Second) // hang guard, not a timing assertion
	for tp.accepted.Load() < int64(DefaultPerDomainConcurrency) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a wrongly admitted fetch to connect
	if n := tp.accepted.Load(); n != int64(DefaultPerDomainConcurrency) {
		t.Fatalf("one tarpit domain holds %d connections, want %d", n, DefaultPerDomainConcurrency)
	}
	// A new id on a good host, from another requester, resolves.
	if _, err := r.ResolveFrom(ctx, s.url("/doc/new"), "198.51.100.9"); err != nil {
		t.Fatalf("good host with one tarpit domain busy: %v", err)
	}
	for i := range 12 {
		start(fmt.Sprintf("t%d.tarpit%d.test", i, i), 100+i)
	}
	deadline = time.Now().Add(10 * time.Second)
	for tp.accepted.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := tp.accepted.Load(); n != 6 {
		t.Fatalf("tarpits hold %d connections, want the 6 general slots", n)
	}
	// Every general slot is held: a known-good id still refreshes.
	before := s.count("/doc/known")
	if _, err := r.ResolveFrom(ctx, known, "198.51.100.10"); err != nil {
		t.Fatalf("known-good id with every general slot held: %v", err)
	}
	if s.count("/doc/known") != before+1 {
		t.Fatal("known-good id was not refetched")
	}
	// A new id now waits for a slot: temporary, never a permanent refusal.
	_, err := r.ResolveFrom(ctx, s.url("/doc/new3"), "198.51.100.12")
	if _, tmp := isTemporary(err); !errors.Is(err, ErrRateLimited) || !tmp {
		t.Fatalf("new id with every general slot held: %v", err)
	}
	tp.close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("tarpit fetches did not end")
	}
}

// Untrusted hosts (policy any) get a shorter whole-fetch timeout than
// trusted ones; a timeout is a temporary failure.
func TestUntrustedTimeoutShorter(t *testing.T) {
	s := hostDocServer(t, 700*time.Millisecond)
	clk := newClock()
	r := budgetResolver(t, s.testServer, clk, func(c *FetcherConfig) {
		c.UntrustedTimeout = 250 * time.Millisecond
		c.TotalTimeout = 10 * time.Second
	}, func(c *ResolverConfig) {
		c.Policy = PolicyAny
		c.TrustedHosts = []string{"trusted.example.com"}
	})
	ctx := context.Background()
	startAt := time.Now()
	_, err := r.ResolveFrom(ctx, "https://untrusted.example.com:"+s.port+"/doc/a", "192.0.2.1")
	elapsed := time.Since(startAt)
	if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("untrusted slow host: %v", err)
	}
	if _, tmp := isTemporary(err); !tmp {
		t.Fatal("a timeout is not temporary")
	}
	if elapsed > 5*time.Second {
		t.Fatalf("untrusted fetch took %v", elapsed)
	}
	if _, err := r.ResolveFrom(ctx, "https://trusted.example.com:"+s.port+"/doc/a", "192.0.2.1"); err != nil {
		t.Fatalf("trusted slow host: %v", err)
	}
	if got := r.cfg.Fetcher.cfg.UntrustedTimeout; got != 250*time.Millisecond {
		t.Fatalf("untrusted timeout %v", got)
	}
	f, err := NewFetcher(FetcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg.UntrustedTimeout != DefaultUntrustedTimeout || f.cfg.TotalTimeout != DefaultTotalTimeout || DefaultUntrustedTimeout >= DefaultTotalTimeout {
		t.Fatalf("default timeouts: untrusted %v, trusted %v", f.cfg.UntrustedTimeout, f.cfg.TotalTimeout)
	}
}

// Temporary (retry later) and permanent failures are told apart.
func TestFailureClassification(t *testing.T) {
	s := newDocServer(t)
	clk := newClock()
	s.set("/500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", 500) })
	s.set("/429", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", http.StatusTooManyRequests) })
	s.set("/403", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", http.StatusForbidden) })
	s.set("/big", serveJSON([]byte(`{"x":"`+strings.Repeat("a", 6000)+`"}`)))
	s.set("/bad", serveJSON([]byte(`{"client_id":"nope"}`)))
	r := budgetResolver(t, s.testServer, clk, nil, nil)
	for _, tc := range []struct {
		path string
		temp bool
	}{{"/500", true}, {"/429", true}, {"/403", false}, {"/404", false}, {"/big", false}, {"/bad", false}} {
		_, err := r.ResolveFrom(context.Background(), s.url(tc.path), fmt.Sprintf("192.0.2.%d", len(tc.path)+int(tc.path[1])))
		if err == nil {
			t.Fatalf("%s resolved", tc.path)
		}
		if _, tmp := isTemporary(err); tmp != tc.temp {
			t.Fatalf("%s: %v temporary=%v, want %v", tc.path, err, tmp, tc.temp)
		}
	}
	// A forbidden address is permanent; a name that does not resolve is not.
	f, _ := NewFetcher(FetcherConfig{LookupIP: func(_ context.Context, h string) ([]netip.Addr, error) {
		if h == "private.test" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil
		}
		return nil, &net.DNSError{Err: "server misbehaving", Name: h, IsTemporary: true}
	}})
	rr, _ := NewResolver(ResolverConfig{Fetcher: f, Policy: PolicyAny})
	_, err := rr.ResolveFrom(context.Background(), "https://private.test/c", "192.0.2.1")
	if _, tmp := isTemporary(err); !errors.Is(err, ErrForbiddenAddress) || tmp {
		t.Fatalf("forbidden: %v", err)
	}
	_, err = rr.ResolveFrom(context.Background(), "https://dns-down.test/c", "192.0.2.1")
	if _, tmp := isTemporary(err); !errors.Is(err, ErrFetch) || !tmp {
		t.Fatalf("dns failure: %v", err)
	}
	for _, e := range []error{ErrInvalidClientID, ErrUntrustedHost} {
		if _, tmp := isTemporary(e); tmp {
			t.Fatalf("%v temporary", e)
		}
	}
}

// Requester keys: IPv4 as is (also IPv4-mapped), IPv6 by /64, anything else
// bounded in length.
// requesterKey is the key the fetcher charges with the default prefixes.
var requesterKey = abuse.Prefixes{}.Key

func TestRequesterKey(t *testing.T) {
	same := [][2]string{
		{"192.0.2.1", "::ffff:192.0.2.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"2001:db8:1:2::1", "2001:db8:1:2::1%eth0"},
	}
	for _, p := range same {
		if requesterKey(p[0]) != requesterKey(p[1]) {
			t.Fatalf("%s and %s: %q vs %q", p[0], p[1], requesterKey(p[0]), requesterKey(p[1]))
		}
	}
	differ := [][2]string{{"192.0.2.1", "192.0.2.2"}, {"2001:db8:1:2::1", "2001:db8:1:3::1"}, {"", "192.0.2.1"}}
	for _, p := range differ {
		if requesterKey(p[0]) == requesterKey(p[1]) {
			t.Fatalf("%s and %s share %q", p[0], p[1], requesterKey(p[0]))
		}
	}
	if k := requesterKey(strings.Repeat("x", 5000)); len(k) > maxKeyLen {
		t.Fatalf("key of %d bytes", len(k))
	}
	for host, want := range map[string]string{
		"claude.ai":             "claude.ai",
		"a.b.example.com":       "example.com",
		"x.tarpit.test":         "tarpit.test",
		"alice.github.io":       "alice.github.io",
		"github.io":             "github.io",
		"www.example.co.uk":     "example.co.uk",
		"127.0.0.1":             "127.0.0.1",
		"co.uk":                 "co.uk",
		"deep.a.b.c.d.bank.com": "bank.com",
	} {
		if got := registrableDomain(host); got != want {
			t.Fatalf("registrableDomain(%q) = %q, want %q", host, got, want)
		}
	}
}

func FuzzRequesterKey(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::ffff:10.0.0.1", "2001:db8::1", "fe80::1%eth0", "", "junk", "1.2.3.4:5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := requesterKey(s)
		if len(k) > maxKeyLen {
			t.Fatalf("key of %d bytes", len(k))
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Is6() && !a.Is4In6() {
			p, _ := a.WithZone("").Prefix(64)
			if k != requesterKey(p.Addr().String()) {
				t.Fatalf("%q not keyed by its /64", s)
			}
		}
		if d := registrableDomain(s); len(d) > len(s) {
			t.Fatalf("domain %q longer than host %q", d, s)
		}
	})
}

// Limiter tables are bounded: attacker-chosen keys never grow memory past
// the cap, and a full table evicts the least recently used idle entry
// instead of refusing.
func TestBudgetTablesBounded(t *testing.T) {
	now := time.Unix(0, 0)
	l := newFetchLimits(limitsConfig{
		requester: limitSpec{rate: 1, burst: 1, conc: 1},
		domain:    limitSpec{rate: 1, burst: 1, conc: 1},
		host:      limitSpec{rate: 1, burst: 1, conc: 1},
		general:   100, reserved: 4, tableCap: 64,
	})
	held, err := l.acquire(fetchKeys{requester: "r-held", domain: "held.test", host: "held.test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		k := fmt.Sprintf("k%d", i)
		release, err := l.acquire(fetchKeys{requester: k, domain: k + ".test", host: k + ".test"}, now)
		if err != nil {
			t.Fatalf("acquire %d refused with a full table: %v", i, err)
		}
		release()
	}
	for _, tb := range []*budgetTable{l.requester, l.domain, l.host, l.known} {
		if n := tb.t.Len(); n > 64 {
			t.Fatalf("%s table holds %d entries, cap 64", tb.name, n)
		}
	}
	// The in-flight entry was kept: its concurrency limit still holds.
	if _, err := l.acquire(fetchKeys{requester: "r-held", domain: "other.test", host: "other.test"}, now); err == nil {
		t.Fatal("in-flight requester entry was evicted")
	}
	held()
	held() // idempotent
}

func TestFetchLimitsSlots(t *testing.T) {
	now := time.Unix(0, 0)
	l := newFetchLimits(limitsConfig{
		requester: limitSpec{rate: 100, burst: 100, conc: 5},
		domain:    limitSpec{rate: 100, burst: 100, conc: 5},
		host:      limitSpec{rate: 100, burst: 100, conc: 5},
		general:   2, reserved: 1, tableCap: 64,
	})
	r1, err1 := l.acquire(fetchKeys{host: "a.example", domain: "a.example"}, now)
	_, err2 := l.acquire(fetchKeys{host: "b.example", domain: "b.example"}, now)
	if err1 != nil || err2 != nil {
		t.Fatalf("acquire: %v %v", err1, err2)
	}
	if _, err := l.acquire(fetchKeys{host: "c.example", domain: "c.example"}, now); err == nil {
		t.Fatal("third concurrent fetch across hosts allowed")
	}
	k1, err := l.acquire(fetchKeys{host: "k.example", known: true}, now)
	if err != nil {
		t.Fatalf("known-good fetch with the general slots full: %v", err)
	}
	if _, err := l.acquire(fetchKeys{host: "k2.example", known: true}, now); err == nil {
		t.Fatal("second known-good fetch beyond the reserved slot allowed")
	}
	k1()
	r1()
	r1() // idempotent
	if _, err := l.acquire(fetchKeys{host: "c.example", domain: "c.example"}, now); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if _, err := l.acquire(fetchKeys{host: "d.example", domain: "d.example"}, now); err == nil {
		t.Fatal("double release freed two slots")
	}
}
