package abuse

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

func TestPrefixKey(t *testing.T) {
	def := Prefixes{}
	cases := []struct {
		p    Prefixes
		in   string
		want string
	}{
		{def, "198.51.100.7", "198.51.100.7"},
		{def, "::ffff:198.51.100.7", "198.51.100.7"},
		{def, "[2001:db8:1:2:3:4:5:6]", "2001:db8:1:2::/64"},
		{def, "2001:db8:1:2::1%eth0", "2001:db8:1:2::/64"},
		{def, "fe80::1%25en0", "fe80::/64"},
		{def, "", InvalidSource},
		{def, "not an ip", InvalidSource},
		{def, "198.51.100.7:443", InvalidSource},
		{Prefixes{IPv4: 24, IPv6: 48}, "198.51.100.7", "198.51.100.0/24"},
		{Prefixes{IPv4: 24, IPv6: 48}, "2001:db8:1:2::1", "2001:db8:1::/48"},
		{Prefixes{IPv4: 99, IPv6: 999}, "2001:db8::1", "2001:db8::1"},
	}
	for _, c := range cases {
		if got := c.p.Key(c.in); got != c.want {
			t.Errorf("%+v.Key(%q) = %q, want %q", c.p, c.in, got, c.want)
		}
	}
}

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	c := NewLRU[int](2)
	c.GetOrAdd("a", func() int { return 1 })
	c.GetOrAdd("b", func() int { return 2 })
	c.Get("a") // b is now the least recently used
	c.GetOrAdd("c", func() int { return 3 })
	if _, ok := c.Peek("b"); ok || c.Len() != 2 || c.Evicted != 1 {
		t.Fatalf("b kept or size %d, evicted %d", c.Len(), c.Evicted)
	}
	if v, ok := c.Peek("a"); !ok || v != 1 {
		t.Fatal("a evicted")
	}
	c.DeleteOldestWhile(func(k string, v int) bool { return k == "a" })
	if c.Len() != 1 {
		t.Fatalf("sweep: len %d", c.Len())
	}
}

func TestLimiterBoundedAndGlobal(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(LimiterConfig{Rate: rate.Every(time.Hour), Burst: 1, MaxKeys: 100,
		GlobalRate: rate.Every(time.Second), GlobalBurst: 150, Now: func() time.Time { return now }})
	for i := range 150 {
		if d := l.Allow(fmt.Sprintf("2001:db8:%x::1", i)); !d.OK {
			t.Fatalf("requester %d refused (%s): a full table must not fail closed", i, d.Scope)
		}
	}
	if l.Len() != 100 {
		t.Fatalf("table holds %d requesters, want the cap 100", l.Len())
	}
	d := l.Allow("2001:db8:ffff::1")
	if d.OK || d.Scope != ScopeGlobal || d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Fatalf("global budget: %+v", d)
	}
	now = now.Add(time.Second)
	if d := l.Allow(fmt.Sprintf("2001:db8:%x::2", 149)); d.OK || d.Scope != ScopeRequester {
		t.Fatalf("a recent requester's budget: %+v", d)
	}
	// A refusal by the global budget takes no requester token.
	if d := l.Allow("2001:db8:fffe::1"); !d.OK {
		t.Fatalf("after the refill: %+v", d)
	}
}

func openStore(t *testing.T) *bboltstore.Store {
	t.Helper()
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// A flood is stored as O(reasons × prefixes × minutes) records with exact
// counts; past MaxKeys the rest goes to an overflow bucket, never lost.
func TestAggregatorFloodAndOverflow(t *testing.T) {
	st := openStore(t)
	now := time.Date(2026, 1, 1, 12, 0, 30, 0, time.UTC)
	a := NewAggregator(AggregatorConfig{Store: st, MaxKeys: 4, Now: func() time.Time { return now }})
	ctx := context.Background()
	reasons := []string{"missing", "origin"}
	for i := range 1000 {
		a.Add(ctx, storage.AuditEvent{Type: "csrf.failure", Outcome: "failure", IP: fmt.Sprintf("203.0.113.%d", i%250),
			Detail: map[string]string{"reason": reasons[i%2]}})
	}
	// 50 more sources: over MaxKeys.
	for i := range 50 {
		a.Add(ctx, storage.AuditEvent{Type: "csrf.failure", Outcome: "failure", IP: fmt.Sprintf("2001:db8:%x::1", i)})
	}
	if a.Pending() != 5 {
		t.Fatalf("%d keys held, want 4 and one overflow bucket", a.Pending())
	}
	// The next minute: the first event flushes the ended one.
	now = now.Add(time.Minute)
	a.Add(ctx, storage.AuditEvent{Type: "login.failure", IP: "198.51.100.1", Detail: map[string]string{"reason": "throttled"}})
	evs, err := st.ListAudit(ctx, storage.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	total := 0
	for _, ev := range evs {
		n, _ := strconv.Atoi(ev.Detail[DetailCount])
		counts[ev.IP+"/"+ev.Detail["reason"]+"/"+ev.Detail[DetailOverflow]] = n
		total += n
		if !ev.Time.Equal(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)) {
			t.Fatalf("record time %v, want the minute's start", ev.Time)
		}
	}
	want := map[string]int{"203.0.113.0/24/missing/": 500, "203.0.113.0/24/origin/": 500,
		"2001:db8::/64//": 1, "2001:db8:1::/64//": 1, "other//true": 48}
	if len(evs) != len(want) || total != 1050 {
		t.Fatalf("records %v (total %d)", counts, total)
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d, want %d", k, counts[k], n)
		}
	}
	if err := a.Flush(ctx, true); err != nil || a.Pending() != 0 {
		t.Fatalf("flush all: %v, %d pending", err, a.Pending())
	}
	evs, _ = st.ListAudit(ctx, storage.AuditQuery{Type: "login.failure"})
	if len(evs) != 1 || evs[0].Detail[DetailCount] != "1" || evs[0].IP != "198.51.100.0/24" {
		t.Fatalf("current minute after Flush(all): %+v", evs)
	}
}

// Run flushes ended minutes in the background and everything at the end.
func TestAggregatorRun(t *testing.T) {
	st := openStore(t)
	a := NewAggregator(AggregatorConfig{Store: st})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx, time.Millisecond); close(done) }()
	a.Add(context.Background(), storage.AuditEvent{Type: "csrf.failure", IP: "192.0.2.1"})
	cancel()
	<-done
	if evs, _ := st.ListAudit(context.Background(), storage.AuditQuery{}); len(evs) != 1 || evs[0].Detail[DetailCount] != "1" {
		t.Fatalf("after Run ended: %+v", evs)
	}
}

// A sparing table passes over busy entries when it evicts, and still takes
// every insert when all of them are busy (it never fails closed).
func TestSparingLRU(t *testing.T) {
	busy := map[string]bool{"a": true}
	c := NewSparingLRU[string](2, func(v string) bool { return busy[v] })
	c.Put("a", "a")
	c.Put("b", "b")
	c.Put("c", "c") // a is the least recently used but busy: b goes
	if _, ok := c.Peek("a"); !ok {
		t.Fatal("busy entry evicted while an idle one could go")
	}
	if _, ok := c.Peek("b"); ok {
		t.Fatal("idle entry kept")
	}
	busy["c"] = true
	c.Put("d", "d") // all busy: the least recently used (a) goes
	if c.Len() != 2 || c.Evicted != 2 {
		t.Fatalf("len %d evicted %d, want 2 and 2", c.Len(), c.Evicted)
	}
	if _, ok := c.Peek("a"); ok {
		t.Fatal("a full table of busy entries refused the insert instead of evicting")
	}
	c.Put("d", "d2")
	if v, _ := c.Peek("d"); v != "d2" || c.Len() != 2 {
		t.Fatalf("Put did not replace: %q, len %d", v, c.Len())
	}
}
