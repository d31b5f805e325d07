package abuse

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Aggregation defaults.
const (
	// DefaultAggregateKeys bounds the distinct keys held between flushes.
	DefaultAggregateKeys = 10_000
	// AggregateIPv4Bits and AggregateIPv6Bits are the default source
	// prefixes of aggregated records: an IPv4 /24 (one hosting block or
	// office, and 256 times fewer records from a block-wide flood) and an
	// IPv6 /64 (one subscriber).
	AggregateIPv4Bits = 24
	AggregateIPv6Bits = 64
	// OtherSource is the source of the overflow bucket.
	OtherSource = "other"
	// maxField bounds each string of a key (bytes).
	maxField = 64
	// maxDetail bounds the detail pairs of a key.
	maxDetail = 8
	// maxOverflowKeys bounds the overflow buckets (per type and minute).
	maxOverflowKeys = 64
)

// Detail members of an aggregated record.
const (
	DetailCount       = "count"
	DetailAggregation = "aggregation" // always "minute"
	DetailOverflow    = "overflow"    // "true" on the overflow bucket
)

// Key identifies one aggregated record. Every field is derived from the
// event with bounded, printable strings.
type Key struct {
	Type, Outcome, Subject, ClientID string
	// Detail is the event's detail, sorted "k=v" pairs joined by "&".
	Detail string
	// Source is the client's prefix, InvalidSource or OtherSource.
	Source string
	// Minute is the start of the event's minute (Unix seconds).
	Minute int64
}

// KeyOf derives the aggregation key of an event: its type, outcome, subject,
// client and detail (each cleaned and cut to 64 bytes, at most 8 detail
// pairs), its source prefix under p and its minute (UTC). Attacker-supplied
// parts cannot make it longer than a fixed bound or not valid UTF-8.
func KeyOf(ev storage.AuditEvent, p Prefixes) Key {
	k := Key{
		Type:     clean(ev.Type),
		Outcome:  clean(ev.Outcome),
		Subject:  clean(ev.Subject),
		ClientID: clean(ev.ClientID),
		Source:   p.Key(ev.IP),
		Minute:   ev.Time.UTC().Truncate(time.Minute).Unix(),
	}
	if len(ev.Detail) > 0 {
		pairs := make([]string, 0, len(ev.Detail))
		for name, v := range ev.Detail {
			pairs = append(pairs, clean(name)+"="+clean(v))
		}
		sort.Strings(pairs)
		if len(pairs) > maxDetail {
			pairs = pairs[:maxDetail]
		}
		k.Detail = strings.Join(pairs, "&")
	}
	return k
}

// clean keeps a string printable ASCII-safe for a key: control characters,
// "=", "&" and invalid UTF-8 become "_", and it is cut to maxField bytes on
// a rune boundary.
func clean(s string) string {
	if len(s) > 4*maxField {
		s = s[:4*maxField]
	}
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || r == '=' || r == '&' || (r >= 0x80 && r < 0xa0) {
			r = '_'
		}
		if b.Len()+utf8.RuneLen(r) > maxField {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// AggregatorConfig configures an Aggregator.
type AggregatorConfig struct {
	// Store receives the aggregated records.
	Store storage.Audit
	// MaxKeys bounds the keys held between flushes (DefaultAggregateKeys
	// when 0); past it events go to an overflow bucket per type and minute.
	MaxKeys int
	// Prefixes of the sources (zero fields: IPv4 /24, IPv6 /64).
	Prefixes Prefixes
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Aggregator counts unauthenticated refusals and stores one record per key
// and minute. Records of a minute are written once that minute has ended
// (by Run, Flush, or the next Add after it), all of them when Close or
// Flush(all) is called. Safe for concurrent use.
type Aggregator struct {
	cfg      AggregatorConfig
	mu       sync.Mutex
	counts   map[Key]int
	overflow map[Key]int
	oldest   int64 // smallest minute held (0: none)
	flushMu  sync.Mutex
}

// NewAggregator returns an aggregator writing to cfg.Store.
func NewAggregator(cfg AggregatorConfig) *Aggregator {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultAggregateKeys
	}
	if cfg.Prefixes.IPv4 <= 0 {
		cfg.Prefixes.IPv4 = AggregateIPv4Bits
	}
	if cfg.Prefixes.IPv6 <= 0 {
		cfg.Prefixes.IPv6 = AggregateIPv6Bits
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Aggregator{cfg: cfg, counts: map[Key]int{}, overflow: map[Key]int{}}
}

// Add counts one refusal (ev.Time zero: now). When a minute held has ended,
// its records are written first (so they also make room).
func (a *Aggregator) Add(ctx context.Context, ev storage.AuditEvent) {
	now := a.cfg.Now()
	if ev.Time.IsZero() {
		ev.Time = now
	}
	k := KeyOf(ev, a.cfg.Prefixes)
	a.mu.Lock()
	due := a.oldest != 0 && a.oldest < now.UTC().Truncate(time.Minute).Unix()
	a.mu.Unlock()
	if due && a.flushMu.TryLock() { // a flush under way does the work
		_ = a.flush(context.WithoutCancel(ctx), false)
		a.flushMu.Unlock()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.counts[k]; ok || len(a.counts) < a.cfg.MaxKeys {
		a.counts[k]++
	} else {
		o := Key{Type: k.Type, Source: OtherSource, Minute: k.Minute}
		if _, ok := a.overflow[o]; !ok && len(a.overflow) >= maxOverflowKeys {
			o.Type = "other"
		}
		a.overflow[o]++
	}
	if a.oldest == 0 || k.Minute < a.oldest {
		a.oldest = k.Minute
	}
}

// Flush writes the records of every minute that has ended, or of all
// minutes when all is set, in one append. A failed write is logged and
// returned; its counts are not kept (the store is failing anyway).
func (a *Aggregator) Flush(ctx context.Context, all bool) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	return a.flush(ctx, all)
}

// flush is Flush with flushMu held.
func (a *Aggregator) flush(ctx context.Context, all bool) error {
	cur := a.cfg.Now().UTC().Truncate(time.Minute).Unix()
	var evs []storage.AuditEvent
	a.mu.Lock()
	a.oldest = 0
	take := func(m map[Key]int, overflow bool) {
		for k, n := range m {
			if !all && k.Minute >= cur {
				if a.oldest == 0 || k.Minute < a.oldest {
					a.oldest = k.Minute
				}
				continue
			}
			delete(m, k)
			evs = append(evs, k.record(n, overflow))
		}
	}
	take(a.counts, false)
	take(a.overflow, true)
	a.mu.Unlock()
	if len(evs) == 0 {
		return nil
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.cfg.Store.AppendAudit(ctx, evs...); err != nil {
		a.cfg.Logger.Error("abuse: writing aggregated audit records failed", "records", len(evs), "error", err)
		return err
	}
	return nil
}

// Run writes ended minutes every interval (15s when <= 0) until ctx ends,
// then writes everything held.
func (a *Aggregator) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 15 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = a.Flush(context.WithoutCancel(ctx), true)
			return
		case <-t.C:
			_ = a.Flush(ctx, false)
		}
	}
}

// Pending is the number of keys held (tests).
func (a *Aggregator) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.counts) + len(a.overflow)
}

// record is the stored form of a key: the minute's start as Time, the
// source prefix as IP, the detail pairs plus count and aggregation.
func (k Key) record(n int, overflow bool) storage.AuditEvent {
	ev := storage.AuditEvent{
		Time:     time.Unix(k.Minute, 0).UTC(),
		Type:     k.Type,
		Outcome:  k.Outcome,
		Subject:  k.Subject,
		ClientID: k.ClientID,
		IP:       k.Source,
		Detail:   map[string]string{},
	}
	if k.Detail != "" {
		for _, p := range strings.Split(k.Detail, "&") {
			name, v, _ := strings.Cut(p, "=")
			ev.Detail[name] = v
		}
	}
	ev.Detail[DetailCount] = strconv.Itoa(n)
	ev.Detail[DetailAggregation] = "minute"
	if overflow {
		ev.Outcome = "other"
		ev.Detail[DetailOverflow] = "true"
	}
	return ev
}
