package idp

import (
	"sync"
	"time"
)

// throttle counts failures per key in a sliding window. Reaching the limit
// locks the key; each further lockout doubles, up to the maximum. Lockouts
// are remembered for a day so the growth is not reset by waiting one out.
//
// State is in memory: several instances sharing a store each keep their own
// counts (the effective limit is multiplied by the instance count).
type throttle struct {
	mu      sync.Mutex
	entries map[string]*throttleEntry
	window  time.Duration
	base    time.Duration
	max     time.Duration
	sweepAt time.Time
}

type throttleEntry struct {
	failures    []time.Time // within the window, oldest first
	lockedUntil time.Time
	lockouts    int
	lastLockout time.Time
}

// maxThrottleEntries bounds memory under a spray of distinct keys; when it is
// reached, entries without a lockout are dropped first.
const maxThrottleEntries = 100_000

func newThrottle(window, base, max time.Duration) *throttle {
	return &throttle{entries: map[string]*throttleEntry{}, window: window, base: base, max: max}
}

// locked reports whether key is locked at now, and until when.
func (t *throttle) locked(key string, now time.Time) (bool, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[key]
	if e == nil || !now.Before(e.lockedUntil) {
		return false, time.Time{}
	}
	return true, e.lockedUntil
}

// fail records a failure of key; it reports whether this failure locked it.
func (t *throttle) fail(key string, limit int, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	e := t.entries[key]
	if e == nil {
		e = &throttleEntry{}
		t.entries[key] = e
	}
	e.prune(now, t.window)
	e.failures = append(e.failures, now)
	if len(e.failures) < limit {
		return false
	}
	if now.Sub(e.lastLockout) > 24*time.Hour {
		e.lockouts = 0
	}
	d := t.base
	for i := 0; i < e.lockouts && d < t.max; i++ {
		d *= 2
	}
	if d > t.max {
		d = t.max
	}
	e.lockouts++
	e.lastLockout = now
	e.lockedUntil = now.Add(d)
	e.failures = e.failures[:0]
	return true
}

// reset forgets key's failures (after a successful login); lockout growth
// is kept.
func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[key]; e != nil {
		e.failures = nil
		if e.lockouts == 0 {
			delete(t.entries, key)
		}
	}
}

func (e *throttleEntry) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(e.failures) && now.Sub(e.failures[i]) >= window {
		i++
	}
	e.failures = e.failures[i:]
}

// sweep drops idle entries every window, and under memory pressure.
func (t *throttle) sweep(now time.Time) {
	if now.Before(t.sweepAt) && len(t.entries) < maxThrottleEntries {
		return
	}
	t.sweepAt = now.Add(t.window)
	for k, e := range t.entries {
		e.prune(now, t.window)
		if len(e.failures) == 0 && !now.Before(e.lockedUntil) && now.Sub(e.lastLockout) > 24*time.Hour {
			delete(t.entries, k)
		}
	}
	if len(t.entries) >= maxThrottleEntries {
		for k, e := range t.entries {
			if !now.Before(e.lockedUntil) {
				delete(t.entries, k)
			}
		}
	}
}
