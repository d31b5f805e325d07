package abuse

import (
	"log/slog"
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

	// Shared, when set, makes the buckets hold across instances: on top of
	// its own bucket each request needs a token from the shared bucket of
	// the same rate and burst, as this instance last saw it plus what it
	// took since. Takes are sent in batches (see Sync), never one write
	// per request; while the store fails only the local buckets apply.
	Shared SharedBuckets
	// SharedName namespaces this limiter's keys in Shared ("dcr", "token").
	SharedName string
	// SyncEvery is how often pending takes are sent (DefaultSyncEvery);
	// a negative value starts no syncer (the caller calls Sync).
	SyncEvery time.Duration
	// SyncBatch is how many tokens of one bucket an instance may take
	// before the store has seen them (default: a tenth of the bucket's
	// burst, at least 1): reaching it sends them at once, and the bucket
	// refuses until they are acknowledged. It bounds what N instances admit
	// beyond the burst to about (N−1)·SyncBatch.
	SyncBatch int
	// SyncKeys bounds the buckets one sync sends (DefaultSyncKeys).
	SyncKeys int
	// Logger reports the shared store failing and recovering.
	Logger *slog.Logger
}

// Limiter is a token bucket per requester prefix, in a bounded LRU table,
// with an optional global bucket. It never refuses a requester because the
// table is full. Safe for concurrent use.
type Limiter struct {
	cfg    LimiterConfig
	mu     sync.Mutex
	table  *LRU[*bucket]
	global *bucket

	// Shared mode (cfg.Shared set): refill intervals, buckets with takes
	// not yet sent, whether a syncer runs, whether the store failed.
	ivReq, ivGlobal time.Duration
	batchReq        int
	batchGlobal     int
	dirty           map[*bucket]string // bucket → its key
	syncMu          sync.Mutex
	kick            chan struct{}
	syncing         bool
	degraded        bool
	// SyncErrors counts failed syncs (tests, metrics).
	SyncErrors int
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
	if cfg.GlobalRate > 0 && cfg.GlobalBurst < 1 {
		cfg.GlobalBurst = cfg.Burst
	}
	if cfg.SyncEvery == 0 {
		cfg.SyncEvery = DefaultSyncEvery
	}
	if cfg.SyncKeys < 1 {
		cfg.SyncKeys = DefaultSyncKeys
	}
	cfg.Logger = defaultLogger(cfg.Logger)
	l := &Limiter{cfg: cfg, table: NewLRU[*bucket](cfg.MaxKeys)}
	if cfg.GlobalRate > 0 {
		l.global = &bucket{lim: rate.NewLimiter(cfg.GlobalRate, cfg.GlobalBurst)}
	}
	if cfg.Shared != nil {
		l.ivReq, l.ivGlobal = interval(cfg.Rate), interval(cfg.GlobalRate)
		l.batchReq, l.batchGlobal = syncBatch(cfg.SyncBatch, cfg.Burst), syncBatch(cfg.SyncBatch, cfg.GlobalBurst)
		l.dirty = map[*bucket]string{}
		l.kick = make(chan struct{}, 1)
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
	b := l.table.GetOrAdd(key, func() *bucket { return &bucket{lim: rate.NewLimiter(l.cfg.Rate, l.cfg.Burst)} })
	if l.sharedOn() {
		if ok, d := l.admit(b, l.ivReq, l.batchReq, l.cfg.Burst, now); !ok {
			return Decision{Scope: ScopeRequester, Key: key, RetryAfter: d}
		}
		if l.global != nil {
			if ok, d := l.admit(l.global, l.ivGlobal, l.batchGlobal, l.cfg.GlobalBurst, now); !ok {
				return Decision{Scope: ScopeGlobal, Key: key, RetryAfter: d}
			}
		}
	}
	r := b.lim.ReserveN(now, 1)
	if d := delayOf(r, now); d > 0 {
		r.CancelAt(now)
		return Decision{Scope: ScopeRequester, Key: key, RetryAfter: d}
	}
	if l.global != nil {
		g := l.global.lim.ReserveN(now, 1)
		if d := delayOf(g, now); d > 0 {
			g.CancelAt(now)
			r.CancelAt(now)
			return Decision{Scope: ScopeGlobal, Key: key, RetryAfter: d}
		}
	}
	if l.cfg.Shared != nil {
		// Sent even while degraded, so that a recovered store is noticed.
		l.take(b, l.ivReq, l.batchReq, key)
		if l.global != nil {
			l.take(l.global, l.ivGlobal, l.batchGlobal, globalKey)
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
