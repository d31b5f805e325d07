package idp

import (
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
)

// throttle counts failures per key in a sliding window, in a bounded LRU
// table. Two policies use it:
//
//   - lock (fail): reaching the limit locks the key; each further lockout
//     doubles, up to the maximum. Lockouts are remembered for a day so the
//     growth is not reset by waiting one out. Used per (account, client
//     prefix), per client prefix and for signups.
//   - back-off (backoff): from the limit on, every failure blocks the key
//     for base·2^(failures−limit), capped at the maximum; attempts refused
//     meanwhile do not count. Used per account, so that failures from ever
//     new addresses slow the account down without locking its owner out
//     for long.
//
// When the table is full the least recently failed key is forgotten (an
// attacker spraying keys to evict a lock pays one failure, and its argon2id
// check, per key). State is in memory: several instances sharing a store
// each keep their own counts, unless shared (Config.SharedLimits): then
// every failure is also counted in a shared bucket of limit tokens that
// drains over the window, a key whose shared count reaches the limit is
// locked on every instance (for at most max) until it drains by one, and
// the lock and back-off decisions take the larger of the local and the
// shared count.
type throttle struct {
	mu      sync.Mutex
	entries *abuse.LRU[*throttleEntry]
	window  time.Duration
	base    time.Duration
	max     time.Duration
	// shared counts failures across instances (nil: per instance);
	// limit is its size.
	shared *abuse.Limiter
	limit  int
}

type throttleEntry struct {
	failures    []time.Time // within the window, oldest first
	lockedUntil time.Time
	lockouts    int
	lastLockout time.Time
}

// maxThrottleEntries bounds memory under a spray of distinct keys.
const maxThrottleEntries = 100_000

// maxFailuresKept bounds one entry (a back-off key keeps its failures).
const maxFailuresKept = 256

func newThrottle(window, base, max time.Duration) *throttle {
	return &throttle{entries: abuse.NewLRU[*throttleEntry](maxThrottleEntries), window: window, base: base, max: max}
}

// share makes t count failures in sb too, as a bucket of limit tokens
// draining over the window, under name.
func (t *throttle) share(sb abuse.SharedBuckets, name string, limit int, now func() time.Time, logger *slog.Logger) {
	if sb == nil || limit < 1 {
		return
	}
	t.limit = limit
	t.shared = abuse.NewLimiter(abuse.LimiterConfig{
		Rate: rate.Every(t.window / time.Duration(limit)), Burst: limit, MaxKeys: maxThrottleEntries,
		Now: now, Shared: sb, SharedName: name, Logger: logger,
	})
}

// sharedLevel is key's failures as counted across instances (0 when not
// shared) and when that count next drops.
func (t *throttle) sharedLevel(key string) (int, time.Duration) {
	if t.shared == nil {
		return 0, 0
	}
	return t.shared.Level(key)
}

// locked reports whether key is locked at now, and until when.
func (t *throttle) locked(key string, now time.Time) (bool, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, _ := t.entries.Peek(key)
	if e != nil && now.Before(e.lockedUntil) {
		return true, e.lockedUntil
	}
	if n, next := t.sharedLevel(key); t.shared != nil && n >= t.limit {
		return true, now.Add(max(min(next, t.max), time.Second))
	}
	return false, time.Time{}
}

// record prunes key's window and appends a failure.
func (t *throttle) record(key string, now time.Time) *throttleEntry {
	t.sweep(now)
	e := t.entries.GetOrAdd(key, func() *throttleEntry { return &throttleEntry{} })
	e.prune(now, t.window)
	if len(e.failures) >= maxFailuresKept {
		e.failures = e.failures[1:]
	}
	e.failures = append(e.failures, now)
	if t.shared != nil {
		t.shared.Record(key)
	}
	return e
}

// count is key's failures in the window: here, or across instances when
// shared and more.
func (t *throttle) count(key string, e *throttleEntry) int {
	n, _ := t.sharedLevel(key)
	return max(len(e.failures), n)
}

// fail records a failure of key; it reports whether this failure locked it.
func (t *throttle) fail(key string, limit int, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.record(key, now)
	if t.count(key, e) < limit {
		return false
	}
	if now.Sub(e.lastLockout) > 24*time.Hour {
		e.lockouts = 0
	}
	e.lock(now, t.grow(e.lockouts))
	e.lockouts++
	e.failures = e.failures[:0]
	return true
}

// backoff records a failure of key under the back-off policy and returns
// the back-off it starts (0 below the limit).
func (t *throttle) backoff(key string, limit int, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.record(key, now)
	n := t.count(key, e) - limit
	if n < 0 {
		return 0
	}
	d := t.grow(n)
	e.lock(now, d)
	return d
}

// grow is base doubled n times, capped at max.
func (t *throttle) grow(n int) time.Duration {
	d := t.base
	for i := 0; i < n && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

func (e *throttleEntry) lock(now time.Time, d time.Duration) {
	e.lastLockout = now
	e.lockedUntil = now.Add(d)
}

// reset forgets key's failures (after a successful login); lockout growth
// is kept.
func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries.Peek(key); ok {
		e.failures = nil
		if e.lockouts == 0 {
			t.entries.Delete(key)
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

// sweep drops idle entries from the least recently used end.
func (t *throttle) sweep(now time.Time) {
	t.entries.DeleteOldestWhile(func(_ string, e *throttleEntry) bool {
		e.prune(now, t.window)
		return len(e.failures) == 0 && !now.Before(e.lockedUntil) && now.Sub(e.lastLockout) > 24*time.Hour
	})
}

// familiar remembers the (account, client prefix) pairs that signed in
// with the right password recently, in a bounded LRU table. They skip the
// account-wide back-off (never their own lockout): an attacker cannot make
// a prefix familiar without the password, and the owner's usual network
// keeps working while strangers fail on the account.
type familiar struct {
	mu      sync.Mutex
	entries *abuse.LRU[time.Time]
	ttl     time.Duration
}

// familiarFor is how long a successful sign-in makes its pair familiar.
const familiarFor = 30 * 24 * time.Hour

func newFamiliar() *familiar {
	return &familiar{entries: abuse.NewLRU[time.Time](maxThrottleEntries), ttl: familiarFor}
}

func (f *familiar) add(key string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries.Delete(key)
	f.entries.GetOrAdd(key, func() time.Time { return now })
}

func (f *familiar) has(key string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.entries.Get(key)
	if ok && now.Sub(t) > f.ttl {
		f.entries.Delete(key)
		return false
	}
	return ok
}
