package abuse

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"time"

	"golang.org/x/time/rate"
)

// SharedBuckets is a table of token buckets several instances share (a
// PostgreSQL table). A bucket is kept as the time its debt ends, its
// "theoretical arrival time" (GCRA): a bucket whose end is at or before now
// is full, and one holding end−now of debt has (end−now)/interval tokens
// taken.
type SharedBuckets interface {
	// TakeShared adds each take's N tokens to its bucket at now
	// (end = max(end, now) + N·Interval) and returns every take's new end,
	// in the order of takes, in one round trip.
	TakeShared(ctx context.Context, now time.Time, takes []SharedTake) ([]time.Time, error)
}

// SharedTake is N tokens taken from one shared bucket.
type SharedTake struct {
	Key      string
	N        int
	Interval time.Duration
}

// Defaults of a shared limiter.
const (
	DefaultSyncEvery  = 250 * time.Millisecond
	DefaultSyncKeys   = 1000
	sharedSyncTimeout = 2 * time.Second
)

// sharedState is what an instance knows of one shared bucket: its end as
// last read from the store, and the tokens taken here since (pending: not
// yet sent; inflight: sent by the sync under way).
type sharedState struct {
	end      time.Time
	pending  int
	inflight int
	iv       time.Duration // one token's refill time
}

// bucket is one requester's (or the global) state.
type bucket struct {
	lim *rate.Limiter
	sh  sharedState
}

// sharedOn reports whether l checks its shared buckets now: configured,
// and the last sync did not fail (an unreachable store falls back to the
// per-instance limit rather than refuse, or wait, on it).
func (l *Limiter) sharedOn() bool { return l.cfg.Shared != nil && !l.degraded }

// interval is one token's refill time, 0 when the bucket is not shared
// (no refill, or no limit).
func interval(r rate.Limit) time.Duration {
	if r <= 0 || r == rate.Inf || float64(r) < 1e-9 {
		return 0
	}
	return time.Duration(math.Ceil(float64(time.Second) / float64(r)))
}

// admit reports whether b's shared bucket has a token at now, counting
// what this instance took and has not yet seen come back from the store;
// past batch unsynced tokens it refuses until the sync returns, so each
// instance runs at most batch tokens ahead of the others' view. It returns
// the wait before a retry when refused.
func (l *Limiter) admit(b *bucket, iv time.Duration, batch, burst int, now time.Time) (bool, time.Duration) {
	if iv == 0 {
		return true, 0
	}
	unsynced := b.sh.pending + b.sh.inflight
	if unsynced >= batch {
		return false, max(l.cfg.SyncEvery, DefaultSyncEvery)
	}
	end := b.sh.end
	if end.Before(now) {
		end = now
	}
	end = end.Add(time.Duration(unsynced+1) * iv)
	if over := end.Sub(now) - time.Duration(burst)*iv; over > 0 {
		return false, over
	}
	return true, 0
}

// take records one token taken from b's shared bucket and wakes the
// syncer.
func (l *Limiter) take(b *bucket, iv time.Duration, batch int, key string) {
	if iv == 0 {
		return
	}
	b.sh.pending++
	b.sh.iv = iv
	l.dirty[b] = key
	if !l.syncing && l.cfg.SyncEvery > 0 {
		l.syncing = true
		go l.syncLoop()
	}
	if b.sh.pending >= batch {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// syncLoop sends pending takes while there are any: at once when a bucket
// reaches its batch, else every SyncEvery, never more often than
// SyncEvery/10 (one statement in flight per limiter). It exits when nothing
// is pending, so an idle limiter has no goroutine.
func (l *Limiter) syncLoop() {
	minGap := l.cfg.SyncEvery / 10
	t := time.NewTimer(l.cfg.SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-l.kick:
		case <-t.C:
		}
		if !l.Sync(context.Background()) {
			return
		}
		time.Sleep(minGap)
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(l.cfg.SyncEvery)
	}
}

// Sync sends the tokens taken here since the last sync to the shared
// buckets (at most SyncKeys buckets in one statement) and learns what the
// other instances took. It reports whether takes remain pending (more keys
// than one statement holds, or taken meanwhile); when none do it marks the
// syncer stopped. A failed sync logs once, drops the batch and turns the
// shared check off until a sync succeeds: the per-instance limit still
// applies. The limiter's syncer calls it; tests may too.
func (l *Limiter) Sync(ctx context.Context) bool {
	l.syncMu.Lock() // one sync at a time: a bucket has one batch in flight
	defer l.syncMu.Unlock()
	l.mu.Lock()
	type entry struct {
		key string
		b   *bucket
	}
	es := make([]entry, 0, len(l.dirty))
	for b, k := range l.dirty {
		es = append(es, entry{k, b})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].key < es[j].key }) // concurrent upserts lock rows alike
	es = es[:min(len(es), l.cfg.SyncKeys)]
	// One take per key: a bucket evicted from the table and its successor
	// may both be pending (the store refuses a key twice in one call).
	takes := make([]SharedTake, 0, len(es))
	bs := make([][]*bucket, 0, len(es))
	for i, e := range es {
		b := e.b
		delete(l.dirty, b)
		if b.sh.pending == 0 {
			continue
		}
		b.sh.inflight, b.sh.pending = b.sh.pending, 0
		if i > 0 && len(takes) > 0 && es[i-1].key == e.key {
			takes[len(takes)-1].N += b.sh.inflight
			bs[len(bs)-1] = append(bs[len(bs)-1], b)
			continue
		}
		takes = append(takes, SharedTake{Key: l.cfg.SharedName + "\x00" + e.key, N: b.sh.inflight, Interval: b.sh.iv})
		bs = append(bs, []*bucket{b})
	}
	now := l.cfg.Now()
	l.mu.Unlock()

	var ends []time.Time
	var err error
	if len(takes) > 0 {
		cctx, cancel := context.WithTimeout(ctx, sharedSyncTimeout)
		ends, err = l.cfg.Shared.TakeShared(cctx, now, takes)
		cancel()
		if err == nil && len(ends) != len(takes) {
			err = errShortReply
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	for i, group := range bs {
		for _, b := range group {
			b.sh.inflight = 0
			if err == nil {
				b.sh.end = ends[i]
			}
		}
	}
	if err != nil {
		if !l.degraded {
			l.cfg.Logger.Warn("shared limits unavailable: falling back to this instance's limits", "limiter", l.cfg.SharedName, "error", err)
		}
		l.degraded = true
		l.SyncErrors++
	} else if len(takes) > 0 {
		if l.degraded {
			l.cfg.Logger.Info("shared limits available again", "limiter", l.cfg.SharedName)
		}
		l.degraded = false
	}
	if len(l.dirty) == 0 {
		l.syncing = false
		return false
	}
	return true
}

type sharedError string

func (e sharedError) Error() string { return string(e) }

const errShortReply = sharedError("abuse: shared buckets: short reply")

// globalKey names the global bucket in the store (no requester key is
// this: prefixes never hold a NUL).
const globalKey = "\x00global"

func defaultLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Level is how many tokens of key's shared bucket are taken, as this
// instance knows it (the store's last answer, drained at the rate since,
// plus takes not yet acknowledged), and how long until one more is free.
// It is 0 when the limiter is not shared, the store is failing or the key
// is unknown here. Failure counters (login throttling) use it with Record.
func (l *Limiter) Level(key string) (int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.sharedOn() || l.ivReq == 0 {
		return 0, 0
	}
	b, ok := l.table.Peek(key)
	if !ok {
		return 0, 0
	}
	now := l.cfg.Now()
	debt := time.Duration(0)
	if b.sh.end.After(now) {
		debt = b.sh.end.Sub(now)
	}
	iv := l.ivReq
	n := int((debt + iv - 1) / iv)
	next := debt - time.Duration(n-1)*iv
	if n == 0 {
		next = 0
	}
	return n + b.sh.pending + b.sh.inflight, next
}

// Record takes one token from key's shared bucket whatever is left (an
// event that happened, such as a failed login) and queues it for the next
// sync. It does nothing when the limiter is not shared.
func (l *Limiter) Record(key string) {
	if l.cfg.Shared == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.table.GetOrAdd(key, func() *bucket { return &bucket{lim: rate.NewLimiter(l.cfg.Rate, l.cfg.Burst)} })
	l.take(b, l.ivReq, 1, key)
}

// syncBatch is the configured batch, else a tenth of burst (at least 1).
func syncBatch(configured, burst int) int {
	if configured >= 1 {
		return configured
	}
	return max(1, burst/10)
}
