package authserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

type regClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *regClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *regClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type regEnv struct {
	t     *testing.T
	h     http.Handler
	store *bboltstore.Store
	clock *regClock
	agg   *abuse.Aggregator
}

const validRegistration = `{"client_name":"Test","redirect_uris":["http://127.0.0.1:3333/cb"]}`

func newRegEnv(t *testing.T, mod func(*RegistrationConfig)) *regEnv {
	t.Helper()
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &regEnv{t: t, store: st, clock: &regClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}
	e.agg = abuse.NewAggregator(abuse.AggregatorConfig{Store: st, Now: e.clock.Now})
	cfg := RegistrationConfig{
		Store:    st,
		Now:      e.clock.Now,
		ClientIP: func(r *http.Request) string { return r.Header.Get("X-Test-IP") },
		Refusals: e.agg,
	}
	if mod != nil {
		mod(&cfg)
	}
	e.h, err = NewRegistrationHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *regEnv) register(ip, contentType, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.Header.Set("X-Test-IP", ip)
	// A forwarded header is never trusted: the resolved client IP is.
	r.Header.Set("X-Forwarded-For", fmt.Sprintf("10.9.%d.%d", len(ip), len(body)%256))
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *regEnv) ok(ip string) bool {
	e.t.Helper()
	w := e.register(ip, "application/json", validRegistration)
	switch w.Code {
	case http.StatusCreated:
		return true
	case http.StatusTooManyRequests:
		if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
			e.t.Fatalf("429 without Retry-After: %q", w.Header().Get("Retry-After"))
		}
		if !strings.Contains(w.Body.String(), `"temporarily_unavailable"`) {
			e.t.Fatalf("429 body %s", w.Body)
		}
		return false
	}
	e.t.Fatalf("registration from %s = %d %s", ip, w.Code, w.Body)
	return false
}

// IPv6 requesters are keyed by /64 (and an IPv4-mapped address is the
// IPv4 address): rotating addresses inside one's /64 does not buy more
// registrations.
func TestRegistrationLimitKeysIPv6By64(t *testing.T) {
	e := newRegEnv(t, func(c *RegistrationConfig) { c.RatePerIP, c.BurstPerIP = rate.Every(time.Hour), 2 })
	if !e.ok("2001:db8:1:2::1") || !e.ok("2001:db8:1:2::2") {
		t.Fatal("first two registrations refused")
	}
	if e.ok("2001:db8:1:2:ffff:ffff:ffff:3") {
		t.Fatal("a third address of the same /64 got a fresh budget")
	}
	if !e.ok("2001:db8:1:3::1") {
		t.Fatal("another /64 refused")
	}
	first, second := e.ok("198.51.100.1"), e.ok("198.51.100.1")
	if !first || !second || e.ok("::ffff:198.51.100.1") {
		t.Fatal("an IPv4-mapped address escaped its IPv4 budget")
	}
}

// A full requester table forgets the least recently seen requester instead
// of refusing every newcomer.
func TestRegistrationLimiterEvictsInsteadOfFailingClosed(t *testing.T) {
	e := newRegEnv(t, func(c *RegistrationConfig) {
		c.RatePerIP, c.BurstPerIP, c.MaxRequesters = rate.Every(time.Hour), 1, 3
	})
	for i := range 10 {
		if !e.ok(fmt.Sprintf("2001:db8:%x::1", i)) {
			t.Fatalf("new requester %d refused: the table failed closed", i)
		}
	}
	// The most recent requesters are still remembered.
	if e.ok("2001:db8:9::2") {
		t.Fatal("a remembered requester got a fresh budget")
	}
}

// The global budget bounds registrations whatever the number of addresses.
func TestRegistrationGlobalBudget(t *testing.T) {
	e := newRegEnv(t, func(c *RegistrationConfig) { c.GlobalRate, c.GlobalBurst = rate.Every(time.Minute), 3 })
	for i := range 3 {
		if !e.ok(fmt.Sprintf("2001:db8:%x::1", i)) {
			t.Fatalf("registration %d refused", i)
		}
	}
	if e.ok("2001:db8:ff::1") {
		t.Fatal("a fresh address passed the exhausted global budget")
	}
	e.clock.Advance(time.Minute)
	if !e.ok("2001:db8:ff::1") {
		t.Fatal("the global budget did not refill")
	}
}

// Stored DCR clients are capped per requester prefix and in total.
func TestRegistrationStoredClientCaps(t *testing.T) {
	e := newRegEnv(t, func(c *RegistrationConfig) {
		c.BurstPerIP, c.MaxClientsPerPrefix, c.MaxClients = 100, 2, 5
	})
	if !e.ok("2001:db8:5:5::1") || !e.ok("2001:db8:5:5::2") {
		t.Fatal("first two refused")
	}
	if e.ok("2001:db8:5:5::3") {
		t.Fatal("a third client from the same /64 was stored")
	}
	first, second := e.ok("198.51.100.1"), e.ok("198.51.100.1")
	if !first || !second || !e.ok("198.51.100.2") {
		t.Fatal("other requesters refused")
	}
	if e.ok("198.51.100.3") {
		t.Fatal("a sixth client was stored past the total cap")
	}
	ctx := context.Background()
	cs, err := e.store.ListClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 5 {
		t.Fatalf("%d clients stored, want 5", len(cs))
	}
	// At the total cap, a client registered over an hour ago and never used
	// (no token ever issued) makes room; used ones are kept.
	e.clock.Advance(2 * time.Hour)
	used := map[string]bool{}
	for _, c := range cs {
		if strings.HasPrefix(c.RegisteredFrom, "2001:db8:5:5:") {
			used[c.ID] = true
			if err := e.store.TouchClient(ctx, c.ID, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !e.ok("198.51.100.3") {
		t.Fatal("no room made at the total cap")
	}
	after, _ := e.store.ListClients(ctx)
	if len(after) != 5 {
		t.Fatalf("%d clients after eviction, want 5", len(after))
	}
	kept := 0
	for _, c := range after {
		if used[c.ID] {
			kept++
		}
	}
	if len(used) != 2 || kept != 2 {
		t.Fatalf("used clients kept: %d of %d", kept, len(used))
	}
	if evs, _ := e.store.ListAudit(ctx, storage.AuditQuery{Type: "client.evicted"}); len(evs) != 1 || evs[0].Outcome != "success" {
		t.Fatalf("eviction audit: %+v", evs)
	}
	// The per-prefix cap does not evict.
	if e.ok("2001:db8:5:5::4") {
		t.Fatal("the per-prefix cap evicted instead of refusing")
	}
}

// A flood of refused registrations writes one audit record per reason,
// source prefix and minute, with its count; a registration stays one record.
func TestRegistrationRefusalsAggregated(t *testing.T) {
	e := newRegEnv(t, func(c *RegistrationConfig) { c.RatePerIP, c.BurstPerIP = rate.Every(time.Hour), 1 })
	ctx := context.Background()
	for i := range 200 {
		e.register(fmt.Sprintf("198.51.100.%d", 1+i%2), "application/json", validRegistration) // one /24
	}
	for i := range 50 {
		e.register(fmt.Sprintf("2001:db8:6:6::%x", i), "text/plain", "x") // one /64
	}
	e.clock.Advance(time.Minute)
	for range 10 {
		e.register("198.51.100.1", "application/json", validRegistration)
	}
	if err := e.agg.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	evs, err := e.store.ListAudit(ctx, storage.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	m0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	type rec struct {
		outcome, source string
		at              time.Time
	}
	got, registered := map[rec]string{}, 0
	for _, ev := range evs {
		switch ev.Type {
		case "client.registered":
			registered++
			if ev.Detail[abuse.DetailCount] != "" {
				t.Fatalf("a registration was aggregated: %+v", ev)
			}
		case "client.register_refused":
			got[rec{ev.Outcome, ev.IP, ev.Time}] = ev.Detail[abuse.DetailCount]
		default:
			t.Fatalf("unexpected record %+v", ev)
		}
	}
	want := map[rec]string{
		{"rate_limited", "198.51.100.0/24", m0}:                  "198",
		{"rate_limited", "198.51.100.0/24", m0.Add(time.Minute)}: "10",
		{"invalid_client_metadata", "2001:db8:6:6::/64", m0}:     "1",
		{"rate_limited", "2001:db8:6:6::/64", m0}:                "49",
	}
	if registered != 2 || len(got) != len(want) || len(evs) != 6 {
		t.Fatalf("%d records (%d registrations): %v", len(evs), registered, got)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%v: count %q, want %q", k, got[k], n)
		}
	}
}
