package abuse

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Rate and Burst are each requester's token bucket.
	Rate  rate.Limit
	Burst int
	// GlobalRate and GlobalBurst, when GlobalRate > 0, bound all requesters
	// together (GlobalBurst defaults to Burst).
	GlobalRate  rate.Limit
	GlobalBurst int
	// MaxKeys bounds the requesters tracked (DefaultMaxKeys when 0); past it
	// the least recently seen one is forgotten.
	MaxKeys int
	// Prefixes keys requesters (IPv4 /32, IPv6 /64 by default).
	Prefixes Prefixes
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Limiter is a token bucket per requester prefix, in a bounded LRU table,
// with an optional global bucket. It never refuses a requester because the
// table is full. Safe for concurrent use.
type Limiter struct {
	cfg    LimiterConfig
	mu     sync.Mutex
	table  *LRU[*rate.Limiter]
	global *rate.Limiter
}

// Scopes of a refusal.
const (
	ScopeRequester = "requester"
	ScopeGlobal    = "global"
)

// Decision is the outcome of Limiter.Allow.
type Decision struct {
	OK bool
	// Scope is ScopeRequester or ScopeGlobal when refused.
	Scope string
	// Key is the requester key the request was counted under.
	Key string
	// RetryAfter is when one more request would be allowed (refusals only).
	RetryAfter time.Duration
}

// NewLimiter returns a limiter; a Burst below 1 is taken as 1.
func NewLimiter(cfg LimiterConfig) *Limiter {
	if cfg.Burst < 1 {
		cfg.Burst = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg, table: NewLRU[*rate.Limiter](cfg.MaxKeys)}
	if cfg.GlobalRate > 0 {
		if cfg.GlobalBurst < 1 {
			cfg.GlobalBurst = cfg.Burst
		}
		l.global = rate.NewLimiter(cfg.GlobalRate, cfg.GlobalBurst)
	}
	return l
}

// Allow takes one token from addr's requester bucket and, when configured,
// one from the global bucket; a refusal takes none.
func (l *Limiter) Allow(addr string) Decision {
	return l.AllowKey(l.cfg.Prefixes.Key(addr))
}

// AllowKey is Allow for a requester key that is not an address (e.g. a
// subject and a tool): the key is used as given.
func (l *Limiter) AllowKey(key string) Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	b := l.table.GetOrAdd(key, func() *rate.Limiter { return rate.NewLimiter(l.cfg.Rate, l.cfg.Burst) })
	r := b.ReserveN(now, 1)
	if d := delayOf(r, now); d > 0 {
		r.CancelAt(now)
		return Decision{Scope: ScopeRequester, Key: key, RetryAfter: d}
	}
	if l.global != nil {
		g := l.global.ReserveN(now, 1)
		if d := delayOf(g, now); d > 0 {
			g.CancelAt(now)
			r.CancelAt(now)
			return Decision{Scope: ScopeGlobal, Key: key, RetryAfter: d}
		}
	}
	return Decision{OK: true, Key: key}
}

// Len is the number of requesters tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.table.Len()
}

func delayOf(r *rate.Reservation, now time.Time) time.Duration {
	if !r.OK() {
		return time.Hour
	}
	return r.DelayFrom(now)
}
