package abuse

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// memBuckets is SharedBuckets in memory, the rule pgstore implements.
type memBuckets struct {
	mu    sync.Mutex
	ends  map[string]time.Time
	fail  bool
	calls int
}

func newMemBuckets() *memBuckets { return &memBuckets{ends: map[string]time.Time{}} }

func (m *memBuckets) TakeShared(_ context.Context, now time.Time, takes []SharedTake) ([]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail {
		return nil, errors.New("store down")
	}
	seen := map[string]bool{}
	for _, t := range takes {
		if seen[t.Key] {
			return nil, errors.New("duplicate bucket") // as pgstore
		}
		seen[t.Key] = true
	}
	out := make([]time.Time, len(takes))
	for i, t := range takes {
		e := m.ends[t.Key]
		if e.Before(now) {
			e = now
		}
		e = e.Add(time.Duration(t.N) * t.Interval)
		m.ends[t.Key] = e
		out[i] = e
	}
	return out, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func sharedCfg(c *clock, s SharedBuckets) LimiterConfig {
	return LimiterConfig{Rate: rate.Every(time.Minute), Burst: 10, Now: c.now, Shared: s, SharedName: "t", SyncEvery: -1}
}

// countAllowed sends n requests from addr, alternating between the
// limiters and syncing each after its request when sync is set.
func countAllowed(n int, addr string, sync bool, ls ...*Limiter) int {
	ok := 0
	for i := range n {
		l := ls[i%len(ls)]
		if l.Allow(addr).OK {
			ok++
		}
		if sync {
			l.Sync(context.Background())
		}
	}
	return ok
}

func TestSharedLimiterHoldsAcrossInstances(t *testing.T) {
	c := newClock()
	// Without a shared store, two instances admit twice the burst.
	a, b := NewLimiter(sharedCfg(c, nil)), NewLimiter(sharedCfg(c, nil))
	if got := countAllowed(40, "198.51.100.7", false, a, b); got != 20 {
		t.Fatalf("per-instance limiters admitted %d, want 20", got)
	}
	s := newMemBuckets()
	a, b = NewLimiter(sharedCfg(c, s)), NewLimiter(sharedCfg(c, s))
	// Each instance may be one unacknowledged take (SyncBatch) behind
	// the other: burst + (N−1)·SyncBatch at most.
	if got := countAllowed(40, "198.51.100.7", true, a, b); got < 10 || got > 11 {
		t.Fatalf("shared limiters admitted %d, want the burst 10 (+1 slack)", got)
	}
	// Another requester has its own budget.
	if !a.Allow("198.51.100.8").OK {
		t.Fatal("another requester refused")
	}
	// The shared bucket refills at the rate, for either instance.
	c.advance(time.Minute)
	a.Sync(context.Background())
	if got := countAllowed(6, "198.51.100.7", true, b, a); got < 1 || got > 2 {
		t.Fatalf("after one interval %d admitted, want 1", got)
	}
}

func TestSharedLimiterSlackIsSyncBatch(t *testing.T) {
	// Takes not yet acknowledged by the store: each instance runs at most
	// SyncBatch ahead, so two unsynced instances admit at most burst + 2·batch
	// even when neither hears of the other until the end.
	for _, batch := range []int{1, 3} {
		c := newClock()
		s := newMemBuckets()
		cfg := sharedCfg(c, s)
		cfg.SyncBatch = batch
		a, b := NewLimiter(cfg), NewLimiter(cfg)
		ok := 0
		for range 20 {
			// Both admit a batch before either syncs.
			for range batch + 2 {
				if a.Allow("2001:db8::1").OK {
					ok++
				}
				if b.Allow("2001:db8::2").OK { // same /64
					ok++
				}
			}
			a.Sync(context.Background())
			b.Sync(context.Background())
		}
		if ok < 10 || ok > 10+2*batch {
			t.Fatalf("batch %d: admitted %d, want within [10, %d]", batch, ok, 10+2*batch)
		}
		// An unacknowledged batch refuses further requests of the key.
		c.advance(time.Hour)
		a.Sync(context.Background())
		for range batch {
			if !a.Allow("2001:db8::1").OK {
				t.Fatalf("batch %d: refused within the batch", batch)
			}
		}
		if d := a.Allow("2001:db8::1"); d.OK || d.RetryAfter <= 0 {
			t.Fatalf("batch %d: admitted past an unsynced batch: %+v", batch, d)
		}
		a.Sync(context.Background())
		if !a.Allow("2001:db8::1").OK {
			t.Fatalf("batch %d: refused after the sync", batch)
		}
	}
}

func TestSharedLimiterGlobalBucket(t *testing.T) {
	c := newClock()
	s := newMemBuckets()
	cfg := sharedCfg(c, s)
	cfg.GlobalRate, cfg.GlobalBurst = rate.Every(time.Minute), 5
	a, b := NewLimiter(cfg), NewLimiter(cfg)
	ok := 0
	for i := range 20 {
		l := []*Limiter{a, b}[i%2]
		d := l.Allow("203.0.113." + string(rune('1'+i%9)))
		if d.OK {
			ok++
		} else if d.Scope != ScopeGlobal {
			t.Fatalf("refusal scope %q, want global", d.Scope)
		}
		l.Sync(context.Background())
	}
	if ok < 5 || ok > 6 {
		t.Fatalf("global burst 5 across two instances admitted %d (+1 slack)", ok)
	}
}

func TestSharedLimiterStoreDownFallsBackToLocal(t *testing.T) {
	c := newClock()
	s := newMemBuckets()
	a := NewLimiter(sharedCfg(c, s))
	s.fail = true
	if !a.Allow("192.0.2.1").OK {
		t.Fatal("first request refused")
	}
	if a.Sync(context.Background()); a.SyncErrors != 1 || !a.degraded {
		t.Fatalf("a failed sync not recorded: errors %d degraded %v", a.SyncErrors, a.degraded)
	}
	// Degraded: the local bucket alone, no wait on the store.
	ok := 1
	for range 20 {
		if a.Allow("192.0.2.1").OK {
			ok++
		}
	}
	if ok != 10 {
		t.Fatalf("degraded limiter admitted %d, want the local burst 10", ok)
	}
	// The store is back: the next sync turns the shared check on again.
	s.fail = false
	c.advance(time.Hour)
	a.Allow("192.0.2.1")
	a.Sync(context.Background())
	if a.degraded {
		t.Fatal("still degraded after a successful sync")
	}
	s.mu.Lock()
	calls := s.calls
	s.mu.Unlock()
	if calls != 2 {
		t.Fatalf("store called %d times, want 2 (one per sync, none per request)", calls)
	}
}

func TestSharedLimiterBackgroundSync(t *testing.T) {
	s := newMemBuckets()
	cfg := LimiterConfig{Rate: rate.Every(time.Hour), Burst: 3, Shared: s, SharedName: "bg", SyncEvery: 20 * time.Millisecond}
	a, b := NewLimiter(cfg), NewLimiter(cfg)
	ok := 0
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; n < 12 && time.Now().Before(deadline); {
		l := []*Limiter{a, b}[n%2]
		d := l.Allow("192.0.2.9")
		if d.OK {
			ok++
		}
		if d.OK || d.RetryAfter > time.Second { // a sync refusal is retried
			n++
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if ok < 3 || ok > 4 {
		t.Fatalf("background-synced limiters admitted %d, want the burst 3 (+1 slack)", ok)
	}
	// Syncers stop when idle.
	for time.Now().Before(deadline) {
		a.mu.Lock()
		idle := !a.syncing
		a.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("syncer still running with nothing pending")
}

// The default batch is a tenth of the burst: a busy requester behind one
// address (a NAT) is not held to one request per store round trip, and the
// slack stays a tenth of the burst per instance.
func TestSharedLimiterDefaultBatch(t *testing.T) {
	c := newClock()
	cfg := sharedCfg(c, newMemBuckets())
	cfg.Burst = 50
	a := NewLimiter(cfg)
	for i := range 5 {
		if !a.Allow("192.0.2.7").OK {
			t.Fatalf("request %d of the batch refused", i+1)
		}
	}
	if a.Allow("192.0.2.7").OK {
		t.Fatal("admitted past a batch of 5 not yet acknowledged")
	}
	a.Sync(context.Background())
	if !a.Allow("192.0.2.7").OK {
		t.Fatal("refused after the sync")
	}
}

// A bucket evicted with takes pending and its successor are sent as one
// take (the store refuses a key twice in one call).
func TestSharedLimiterEvictedBucketMerged(t *testing.T) {
	c := newClock()
	s := newMemBuckets()
	cfg := sharedCfg(c, s)
	cfg.MaxKeys = 1
	a := NewLimiter(cfg)
	a.Allow("192.0.2.1")
	a.Allow("192.0.2.2") // evicts .1, whose take is pending
	a.Allow("192.0.2.1") // a new bucket for .1
	a.Sync(context.Background())
	if a.SyncErrors != 0 {
		t.Fatalf("sync failed %d times", a.SyncErrors)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if got, want := s.ends["t\x00192.0.2.1"], c.t.Add(2*time.Minute); !got.Equal(want) {
		t.Fatalf("merged bucket ends at %v, want %v (two takes)", got, want)
	}
}
