package idp

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
)

// memBuckets is abuse.SharedBuckets in memory (the rule pgstore implements).
type memBuckets struct {
	mu   sync.Mutex
	ends map[string]time.Time
}

func (m *memBuckets) TakeShared(_ context.Context, now time.Time, takes []abuse.SharedTake) ([]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]time.Time, len(takes))
	for i, t := range takes {
		e := m.ends[t.Key]
		if e.Before(now) {
			e = now
		}
		e = e.Add(time.Duration(t.N) * t.Interval)
		m.ends[t.Key], out[i] = e, e
	}
	return out, nil
}

// syncClock is a test clock the limiters' syncers may read while the test
// moves it.
type syncClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *syncClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *syncClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// Two instances' throttles on one shared store: failures spread over both
// lock the key on both at the limit; per instance each would allow the
// limit (twice in all).
func TestThrottleSharedAcrossInstances(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &syncClock{t: now}
	clock := c.now
	const limit = 6
	mk := func(sb abuse.SharedBuckets) *throttle {
		th := newThrottle(15*time.Minute, time.Minute, time.Hour)
		th.share(sb, "login_ip", limit, clock, nil)
		return th
	}
	failures := func(a, b *throttle) int {
		n := 0
		for i := range 4 * limit {
			th := []*throttle{a, b}[i%2]
			if locked, _ := th.locked("198.51.100.1", now); locked {
				continue
			}
			n++
			th.fail("198.51.100.1", limit, now)
			if th.shared != nil {
				th.shared.Sync(context.Background())
			}
			now = now.Add(time.Second)
			c.set(now)
		}
		return n
	}
	if got := failures(mk(nil), mk(nil)); got != 2*limit {
		t.Fatalf("per instance: %d failures before both locked, want %d", got, 2*limit)
	}
	sb := &memBuckets{ends: map[string]time.Time{}}
	a, b := mk(sb), mk(sb)
	if got := failures(a, b); got < limit || got > limit+1 {
		t.Fatalf("shared: %d failures before both locked, want %d (+1 slack)", got, limit)
	}
	// Both refuse, for at most the maximum lockout, and with a Retry-After.
	for _, th := range []*throttle{a, b} {
		locked, until := th.locked("198.51.100.1", now)
		if !locked || !until.After(now) || until.Sub(now) > time.Hour {
			t.Fatalf("not locked on both instances: %v until %v", locked, until)
		}
	}
	// Another key is unaffected; the shared count drains over the window.
	if locked, _ := b.locked("198.51.100.2", now); locked {
		t.Fatal("another prefix locked")
	}
	now = now.Add(16 * time.Minute)
	c.set(now)
	for _, th := range []*throttle{a, b} {
		if locked, _ := th.locked("198.51.100.1", now); locked {
			t.Fatal("still locked after the window and lockout passed")
		}
	}
}

// The account back-off counts failures from both instances.
func TestThrottleSharedBackoff(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := (&syncClock{t: now}).now
	sb := &memBuckets{ends: map[string]time.Time{}}
	a := newThrottle(15*time.Minute, time.Second, time.Minute)
	b := newThrottle(15*time.Minute, time.Second, time.Minute)
	a.share(sb, "login_account", 4, clock, nil)
	b.share(sb, "login_account", 4, clock, nil)
	for i := range 3 {
		th := []*throttle{a, b}[i%2]
		if d := th.backoff("alice@example.com", 4, now); d != 0 {
			t.Fatalf("failure %d backed off %v below the limit", i+1, d)
		}
		th.shared.Sync(context.Background())
	}
	// The fourth failure is on b, which has heard of two (it learns of
	// the others' when it syncs: one failure of slack). Once synced, the
	// shared count is at the limit and b backs the account off, though
	// only two of the four failures were its own.
	b.backoff("alice@example.com", 4, now)
	b.shared.Sync(context.Background())
	if n, _ := b.sharedLevel("alice@example.com"); n != 4 {
		t.Fatalf("shared count %d after four failures, want 4", n)
	}
	if locked, _ := b.locked("alice@example.com", now); !locked {
		t.Fatal("account not backed off at the shared limit")
	}
	if d := b.backoff("alice@example.com", 4, now); d == 0 {
		t.Fatal("no back-off past the shared limit")
	}
}
