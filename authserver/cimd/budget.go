package cimd

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/time/rate"
)

// Fetch budgets. Every fetch of a document not known to be good is charged
// to three token buckets (the requester, the client id's registrable domain
// and its host) and takes one of the general slots; a refetch of a client id
// that resolved before is charged to a bucket of its own per host and may
// use reserved slots, so no flood of junk can starve it. Every table is a
// bounded LRU: attacker-chosen keys never grow memory past it, and a full
// table evicts its least recently used idle entry instead of refusing.

const (
	// maxTrackedKeys bounds each limiter table (requesters, domains, hosts,
	// known-good hosts).
	maxTrackedKeys = 4096
	// maxKeyLen bounds a table key (a requester that is not an IP address).
	maxKeyLen = 64
	// maxRetryAfter caps the Retry-After suggested for a throttled fetch.
	maxRetryAfter = time.Minute
)

// limitSpec is one budget: a token bucket and a concurrency cap (0: none).
type limitSpec struct {
	rate  rate.Limit
	burst int
	conc  int
}

type bucket struct {
	lim      *rate.Limiter
	inflight int
}

// budgetTable is a bounded table of buckets of one kind.
type budgetTable struct {
	name string // "requester", "domain", "host", "known client"
	spec limitSpec
	t    *abuse.LRU[*bucket]
}

func newBudgetTable(name string, spec limitSpec, capacity int) *budgetTable {
	return &budgetTable{name: name, spec: spec, t: abuse.NewSparingLRU(capacity, func(b *bucket) bool { return b.inflight > 0 })}
}

// check reports whether key may take one more fetch now, without changing
// anything; otherwise why not and how long to wait.
func (b *budgetTable) check(key string, now time.Time) (string, time.Duration) {
	bk, ok := b.t.Peek(key)
	if !ok {
		return "", 0 // a fresh bucket is full
	}
	if b.spec.conc > 0 && bk.inflight >= b.spec.conc {
		return "too many concurrent fetches for this " + b.name, time.Second
	}
	if tokens := bk.lim.TokensAt(now); tokens < 1 {
		wait := time.Second
		if b.spec.rate > 0 {
			wait = time.Duration((1 - tokens) / float64(b.spec.rate) * float64(time.Second))
		}
		return "rate limit exceeded for this " + b.name, wait
	}
	return "", 0
}

// take charges one fetch to key (check said yes, under the same lock).
func (b *budgetTable) take(key string, now time.Time) *bucket {
	bk, ok := b.t.Get(key)
	if !ok {
		bk = &bucket{lim: rate.NewLimiter(b.spec.rate, b.spec.burst)}
		b.t.Put(key, bk)
	}
	bk.lim.AllowN(now, 1)
	bk.inflight++
	return bk
}

// limitsConfig configures fetchLimits.
type limitsConfig struct {
	requester, domain, host limitSpec
	general, reserved       int // slots for all fetches, and extra for known-good ids
	tableCap                int
}

// fetchLimits holds every fetch budget.
type fetchLimits struct {
	mu                      sync.Mutex
	requester, domain, host *budgetTable
	known                   *budgetTable // per host, for known-good ids only
	general, reserved       int
	inGeneral, inReserved   int
}

func newFetchLimits(c limitsConfig) *fetchLimits {
	if c.tableCap <= 0 {
		c.tableCap = maxTrackedKeys
	}
	return &fetchLimits{
		requester: newBudgetTable("requester", c.requester, c.tableCap),
		domain:    newBudgetTable("domain", c.domain, c.tableCap),
		host:      newBudgetTable("host", c.host, c.tableCap),
		known:     newBudgetTable("host", c.host, c.tableCap),
		general:   c.general,
		reserved:  c.reserved,
	}
}

// fetchKeys names what a fetch is charged to.
type fetchKeys struct {
	// requester "" (not known): no requester budget is charged.
	requester, domain, host string
	// known: the client id resolved successfully before; charged to the
	// known-good bucket of its host only, and may use a reserved slot.
	known bool
}

// limitError is a refusal by a budget: nothing was sent.
type limitError struct {
	reason string
	wait   time.Duration
}

func (e *limitError) Error() string { return e.reason }

// acquire takes a slot and charges every budget of k, or refuses at once
// (never queues) and charges nothing.
func (l *fetchLimits) acquire(k fetchKeys, now time.Time) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	reserved := false
	switch {
	case l.inGeneral < l.general:
	case k.known && l.inReserved < l.reserved:
		reserved = true
	default:
		return nil, &limitError{reason: "too many concurrent fetches", wait: time.Second}
	}
	type charge struct {
		t   *budgetTable
		key string
	}
	charges := []charge{{l.domain, k.domain}, {l.host, k.host}}
	if k.requester != "" {
		charges = append([]charge{{l.requester, k.requester}}, charges...)
	}
	if k.known {
		charges = []charge{{l.known, k.host}}
	}
	for _, c := range charges {
		if reason, wait := c.t.check(c.key, now); reason != "" {
			return nil, &limitError{reason: reason, wait: wait}
		}
	}
	taken := make([]*bucket, 0, len(charges))
	for _, c := range charges {
		taken = append(taken, c.t.take(c.key, now))
	}
	if reserved {
		l.inReserved++
	} else {
		l.inGeneral++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, b := range taken {
				b.inflight--
			}
			if reserved {
				l.inReserved--
			} else {
				l.inGeneral--
			}
		})
	}, nil
}

// registrableDomain is the budget key of a host: its registrable domain
// (eTLD+1 by the Public Suffix List, "alice.github.io" under "github.io"),
// the host itself when it is a public suffix or an IP literal.
func registrableDomain(host string) string {
	if _, err := netip.ParseAddr(host); err == nil {
		return host
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil || d == "" || !strings.HasSuffix(host, d) {
		return host
	}
	return d
}
