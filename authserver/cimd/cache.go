package cimd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"golang.org/x/sync/singleflight"
)

// Trust policies of ResolverConfig.Policy.
const (
	// PolicyTrusted resolves only client ids whose host is in TrustedHosts.
	PolicyTrusted = "trusted"
	// PolicyAny resolves any https client id (still SSRF-safe).
	PolicyAny = "any"
)

// Defaults of ResolverConfig.
const (
	DefaultMinCacheTTL = 5 * time.Minute
	DefaultMaxCacheTTL = 24 * time.Hour
	// DefaultNegativeTTL is how long a failed client id is remembered: a
	// repeated request for it costs no fetch.
	DefaultNegativeTTL = 30 * time.Second
	// DefaultMaxStale is how long past its expiry a document that resolved
	// before is still served when its refetch fails transiently (throttled,
	// timeout, 5xx, network). A permanent failure drops it at once.
	DefaultMaxStale = time.Hour
	// maxCacheEntries bounds the document cache (PolicyAny lets anyone add
	// entries); beyond it, expired entries and then the oldest are dropped.
	maxCacheEntries = 1024
)

// Results reported to ResolverConfig.OnFetch.
const (
	ResultOK               = "ok"
	ResultUntrustedHost    = "untrusted_host"
	ResultForbiddenAddress = "forbidden_address"
	ResultRateLimited      = "rate_limited"
	ResultFetchError       = "fetch_error"
	ResultInvalidDocument  = "invalid_document"
)

// ResolverConfig configures a Resolver.
type ResolverConfig struct {
	// Fetcher retrieves documents. Required.
	Fetcher *Fetcher
	// TrustedHosts lists exact host names ("claude.ai") and suffix patterns
	// ("*.example.com" matches a.example.com and a.b.example.com, not
	// example.com). Lower-case; ports are not part of the match.
	TrustedHosts []string
	// Policy is PolicyTrusted (default) or PolicyAny.
	Policy string
	// MinCacheTTL and MaxCacheTTL bound the cache lifetime taken from the
	// response's Cache-Control / Expires (defaults 5m and 24h).
	MinCacheTTL time.Duration
	MaxCacheTTL time.Duration
	// NegativeTTL is how long a failed fetch (not a budget refusal) is
	// remembered per client id (default 30s; negative: never). Repeated
	// junk then costs no fetch. Draft §5.2 forbids caching error responses
	// as documents; this caches only the fact of a failure, briefly.
	NegativeTTL time.Duration
	// MaxStale is how long past expiry a cached document is served when its
	// refetch fails transiently (default 1h; negative: never).
	MaxStale time.Duration
	// Now is the cache clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// OnFetch, when set, is called once per resolution that was not served
	// from the cache, with the client id host and one of the Result…
	// constants (metrics, audit). The host is chosen by whoever sent the
	// client_id: do not use it as a metric label unless the host is trusted
	// (see Resolver.Trusted), or cardinality is unbounded.
	OnFetch func(host, result string)
}

// Resolver turns a CIMD client_id into a client: policy check, cached fetch,
// validation. Concurrent resolutions of one URL share a single fetch; a
// failure is remembered for NegativeTTL only (no document is ever cached
// from an error response, draft §5.2). Fetches are charged to the requester,
// the registrable domain and the host (see budget.go); a refetch of a client
// id that resolved before, on a trusted host, has budgets and slots of its
// own, and any known-good document is served stale for MaxStale when its
// refetch fails transiently.
//
// A Resolver is safe for concurrent use.
type Resolver struct {
	cfg      ResolverConfig
	exact    map[string]bool
	suffix   []string // ".example.com"
	now      func() time.Time
	log      *slog.Logger
	group    singleflight.Group
	mu       sync.Mutex
	entries  map[string]cacheEntry
	negative *abuse.LRU[negativeEntry]
	known    *abuse.LRU[struct{}] // client ids that resolved successfully
	// afterJoin, when set (tests), runs once a caller waits on a flight.
	afterJoin func()
}

type negativeEntry struct {
	err   error
	until time.Time
}

type cacheEntry struct {
	client  storage.Client
	expires time.Time
	stored  time.Time
}

// NewResolver builds a Resolver. It refuses an unknown policy, malformed
// trusted-host patterns and MinCacheTTL > MaxCacheTTL.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	if cfg.Fetcher == nil {
		return nil, errors.New("cimd: resolver needs a fetcher")
	}
	switch cfg.Policy {
	case "":
		cfg.Policy = PolicyTrusted
	case PolicyTrusted, PolicyAny:
	default:
		return nil, fmt.Errorf("cimd: unknown policy %q (want %q or %q)", cfg.Policy, PolicyTrusted, PolicyAny)
	}
	if cfg.MinCacheTTL < 0 || cfg.MaxCacheTTL < 0 {
		return nil, errors.New("cimd: cache ttl bounds must not be negative")
	}
	if cfg.MinCacheTTL == 0 {
		cfg.MinCacheTTL = DefaultMinCacheTTL
	}
	if cfg.MaxCacheTTL == 0 {
		cfg.MaxCacheTTL = DefaultMaxCacheTTL
	}
	if cfg.MinCacheTTL > cfg.MaxCacheTTL {
		return nil, errors.New("cimd: min cache ttl exceeds max cache ttl")
	}
	setDefault(&cfg.NegativeTTL, DefaultNegativeTTL)
	setDefault(&cfg.MaxStale, DefaultMaxStale)
	r := &Resolver{
		cfg:      cfg,
		exact:    map[string]bool{},
		now:      cfg.Now,
		log:      cfg.Logger,
		entries:  map[string]cacheEntry{},
		negative: abuse.NewLRU[negativeEntry](maxTrackedKeys),
		known:    abuse.NewLRU[struct{}](maxTrackedKeys),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, h := range cfg.TrustedHosts {
		pattern := strings.ToLower(strings.TrimSpace(h))
		name, isSuffix := strings.CutPrefix(pattern, "*.")
		if err := checkHost(name, false); err != nil || strings.Contains(name, "*") {
			return nil, fmt.Errorf("cimd: invalid trusted host pattern %q", h)
		}
		if isSuffix {
			r.suffix = append(r.suffix, "."+name)
		} else {
			r.exact[name] = true
		}
	}
	if cfg.Policy == PolicyTrusted && len(r.exact) == 0 && len(r.suffix) == 0 {
		r.log.Warn("cimd: policy is \"trusted\" but no trusted hosts are configured: every metadata document client will be refused")
	}
	return r, nil
}

// ValidClientID checks a client id the way Resolve will: ValidClientIDURL,
// with IP literals admitted only in the fetcher's development mode.
func (r *Resolver) ValidClientID(clientID string) error {
	return validClientIDURL(clientID, r.cfg.Fetcher.AllowsLoopback())
}

// Trusted reports whether the client id's host matches TrustedHosts
// (whatever the policy): the consent page can show trusted clients with
// less friction.
func (r *Resolver) Trusted(clientID string) bool {
	if r.ValidClientID(clientID) != nil {
		return false
	}
	return r.trustedHost(hostOf(clientID))
}

func (r *Resolver) trustedHost(host string) bool {
	if r.exact[host] {
		return true
	}
	for _, s := range r.suffix {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// Resolve returns the client described by the metadata document at
// clientID. Errors match ErrInvalidClientID, ErrUntrustedHost, ErrFetch or
// ErrInvalidDocument; a failure that may pass also matches ErrTemporary. The
// returned client's CreatedAt/UpdatedAt are the fetch time; its Fingerprint
// changes when the name or redirect URIs do. The fetch, if any, is charged
// to an anonymous requester: servers use ResolveFrom.
func (r *Resolver) Resolve(ctx context.Context, clientID string) (storage.Client, error) {
	return r.ResolveFrom(ctx, clientID, "")
}

// ResolveFrom is Resolve on behalf of requester (the client IP that sent
// the client_id), whose budget pays for a fetch.
func (r *Resolver) ResolveFrom(ctx context.Context, clientID, requester string) (storage.Client, error) {
	if err := r.ValidClientID(clientID); err != nil {
		return storage.Client{}, err
	}
	host := hostOf(clientID)
	trusted := r.trustedHost(host)
	if r.cfg.Policy == PolicyTrusted && !trusted {
		r.report(host, ResultUntrustedHost)
		return storage.Client{}, ErrUntrustedHost
	}
	if c, ok := r.cached(clientID); ok {
		return c, nil
	}
	if c, ok, err := r.negativeHit(clientID); ok {
		return c, err
	}

	// One fetch per URL at a time. The fetch runs on a context detached
	// from any one caller's cancellation (bounded by the fetcher's total
	// timeout), so a caller that goes away does not fail the others.
	ch := r.group.DoChan(clientID, func() (any, error) {
		if c, ok := r.cached(clientID); ok { // filled while we queued
			return c, nil
		}
		if c, ok, err := r.negativeHit(clientID); ok {
			return c, err
		}
		class := fetchClass{requester: requester, trusted: trusted, known: trusted && r.isKnown(clientID)}
		return r.fetchAndStore(context.WithoutCancel(ctx), clientID, host, class)
	})
	if r.afterJoin != nil {
		r.afterJoin()
	}
	select {
	case <-ctx.Done():
		return storage.Client{}, &fetchError{reason: "canceled", cause: ctx.Err(), temporary: true}
	case res := <-ch:
		if res.Err != nil {
			return storage.Client{}, res.Err
		}
		return cloneClient(res.Val.(storage.Client)), nil
	}
}

// ResolveClient is Resolve under the name of the authorization server's
// ClientResolver interface, so a *Resolver plugs in directly.
func (r *Resolver) ResolveClient(ctx context.Context, clientID string) (storage.Client, error) {
	return r.Resolve(ctx, clientID)
}

// ResolveClientFrom is ResolveFrom under the name of the authorization
// server's optional requester-aware resolver interface.
func (r *Resolver) ResolveClientFrom(ctx context.Context, clientID, requester string) (storage.Client, error) {
	return r.ResolveFrom(ctx, clientID, requester)
}

func (r *Resolver) fetchAndStore(ctx context.Context, clientID, host string, class fetchClass) (storage.Client, error) {
	resp, err := r.cfg.Fetcher.fetchAs(ctx, clientID, class)
	if err != nil {
		switch {
		case errors.Is(err, ErrForbiddenAddress):
			r.report(host, ResultForbiddenAddress)
		case errors.Is(err, ErrRateLimited):
			r.report(host, ResultRateLimited)
		default:
			r.report(host, ResultFetchError)
		}
		var fe *fetchError
		if !errors.As(err, &fe) {
			return storage.Client{}, err // an invalid client id: nothing was sent
		}
		if !errors.Is(err, ErrRateLimited) {
			// A budget refusal is the limiter's business; anything that
			// reached the network is remembered.
			r.remember(clientID, fe)
			if fe.temporary && r.cfg.NegativeTTL > 0 {
				fe = fe.withRetry(r.cfg.NegativeTTL)
			}
		}
		if !fe.temporary {
			r.forget(clientID)
			return storage.Client{}, fe
		}
		if c, ok := r.stale(clientID); ok {
			r.log.Debug("cimd: refetch failed, serving the cached document", "host", host, "reason", fe.reason)
			return c, nil
		}
		return storage.Client{}, fe
	}
	c, err := ValidateDocument(clientID, resp.Body)
	if err != nil {
		r.report(host, ResultInvalidDocument)
		r.remember(clientID, err)
		r.forget(clientID)
		return storage.Client{}, err
	}
	c = stamp(c, resp.FetchedAt)
	r.report(host, ResultOK)
	r.mu.Lock()
	r.known.Put(clientID, struct{}{})
	r.negative.Delete(clientID)
	r.mu.Unlock()
	if ttl, ok := r.cacheTTL(resp.Header, resp.FetchedAt); ok {
		r.store(clientID, c, resp.FetchedAt.Add(ttl))
	} else {
		r.mu.Lock()
		delete(r.entries, clientID) // no-store: drop an older copy too
		r.mu.Unlock()
	}
	return c, nil
}

// remember records a failed fetch of clientID for NegativeTTL.
func (r *Resolver) remember(clientID string, err error) {
	if r.cfg.NegativeTTL <= 0 {
		return
	}
	r.mu.Lock()
	r.negative.Put(clientID, negativeEntry{err: err, until: r.now().Add(r.cfg.NegativeTTL)})
	r.mu.Unlock()
}

// negativeHit answers from a remembered failure: the stale document when
// the failure was temporary and one is kept, else the failure (a temporary
// one suggesting to retry when it is forgotten).
func (r *Resolver) negativeHit(clientID string) (storage.Client, bool, error) {
	r.mu.Lock()
	now := r.now()
	e, ok := r.negative.Peek(clientID)
	if ok && !now.Before(e.until) {
		r.negative.Delete(clientID)
		ok = false
	}
	r.mu.Unlock()
	if !ok {
		return storage.Client{}, false, nil
	}
	var fe *fetchError
	if errors.As(e.err, &fe) && fe.temporary {
		if c, ok := r.stale(clientID); ok {
			return c, true, nil
		}
		return storage.Client{}, true, fe.withRetry(e.until.Sub(now))
	}
	return storage.Client{}, true, e.err
}

// isKnown reports whether clientID resolved successfully before.
func (r *Resolver) isKnown(clientID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.known.Get(clientID)
	return ok
}

// forget drops what is known of clientID after a permanent failure (the
// document is gone or no longer valid): no stale copy, no reserved budget.
func (r *Resolver) forget(clientID string) {
	r.mu.Lock()
	delete(r.entries, clientID)
	r.known.Delete(clientID)
	r.mu.Unlock()
}

func (r *Resolver) report(host, result string) {
	if r.cfg.OnFetch != nil {
		r.cfg.OnFetch(host, result)
	}
}

// Invalidate drops a cached document and any remembered failure (e.g.
// after an operator action).
func (r *Resolver) Invalidate(clientID string) {
	r.mu.Lock()
	delete(r.entries, clientID)
	r.negative.Delete(clientID)
	r.known.Delete(clientID)
	r.mu.Unlock()
}

// cached returns a fresh cached document.
func (r *Resolver) cached(clientID string) (storage.Client, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[clientID]
	if !ok {
		return storage.Client{}, false
	}
	now := r.now()
	if !now.Before(e.expires) {
		if !now.Before(r.staleUntil(e)) {
			delete(r.entries, clientID)
		}
		return storage.Client{}, false
	}
	return cloneClient(e.client), true
}

// stale returns a cached document, expired or not, within MaxStale.
func (r *Resolver) stale(clientID string) (storage.Client, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[clientID]
	if !ok || !r.now().Before(r.staleUntil(e)) {
		return storage.Client{}, false
	}
	return cloneClient(e.client), true
}

func (r *Resolver) staleUntil(e cacheEntry) time.Time {
	if r.cfg.MaxStale <= 0 {
		return e.expires
	}
	return e.expires.Add(r.cfg.MaxStale)
}

func (r *Resolver) store(clientID string, c storage.Client, expires time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if _, ok := r.entries[clientID]; !ok && len(r.entries) >= maxCacheEntries {
		var oldestKey string
		var oldest time.Time
		for k, e := range r.entries {
			if !now.Before(r.staleUntil(e)) {
				delete(r.entries, k)
				continue
			}
			if oldestKey == "" || e.stored.Before(oldest) {
				oldestKey, oldest = k, e.stored
			}
		}
		if len(r.entries) >= maxCacheEntries {
			delete(r.entries, oldestKey)
		}
	}
	r.entries[clientID] = cacheEntry{client: cloneClient(c), expires: expires, stored: now}
}

// cacheTTL derives the cache lifetime from the response (RFC 9111), bounded
// by [MinCacheTTL, MaxCacheTTL] as draft §5.2 allows. The server is a shared
// cache, so s-maxage wins over max-age. no-store, no-cache and private mean
// "do not cache" (no revalidation is implemented, and a private response is
// not for a shared cache). Without freshness information the lifetime is
// MinCacheTTL.
func (r *Resolver) cacheTTL(h http.Header, fetchedAt time.Time) (time.Duration, bool) {
	return cacheLifetime(h, fetchedAt, r.cfg.MinCacheTTL, r.cfg.MaxCacheTTL)
}

// cacheLifetime is Resolver.cacheTTL's rule with explicit bounds.
func cacheLifetime(h http.Header, fetchedAt time.Time, minTTL, maxTTL time.Duration) (time.Duration, bool) {
	var maxAge, sMaxAge time.Duration = -1, -1
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch name {
			case "no-store", "no-cache", "private":
				return 0, false
			case "max-age":
				if secs, ok := parseDeltaSeconds(val); ok {
					maxAge = secs
				}
			case "s-maxage":
				if secs, ok := parseDeltaSeconds(val); ok {
					sMaxAge = secs
				}
			}
		}
	}
	var ttl time.Duration
	switch {
	case sMaxAge >= 0:
		ttl = sMaxAge
	case maxAge >= 0:
		ttl = maxAge
	case h.Get("Expires") != "":
		exp, err := http.ParseTime(h.Get("Expires"))
		if err != nil {
			ttl = 0 // invalid Expires means "already expired" (RFC 9111 §5.3)
			break
		}
		base := fetchedAt
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			base = d
		}
		ttl = exp.Sub(base)
	default:
		ttl = minTTL
	}
	if age, ok := parseDeltaSeconds(h.Get("Age")); ok {
		ttl -= age
	}
	ttl = max(ttl, minTTL)
	ttl = min(ttl, maxTTL)
	return ttl, true
}

// parseDeltaSeconds parses an RFC 9111 §1.2.2 delta-seconds value.
func parseDeltaSeconds(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	if len(s) > 10 && allDigits(s) {
		return 1 << 31 * time.Second, true // RFC 9111 §1.2.2: overflow means 2^31
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

func cloneClient(c storage.Client) storage.Client {
	c.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	c.GrantTypes = append([]string(nil), c.GrantTypes...)
	c.Scopes = append([]string(nil), c.Scopes...)
	c.DefaultScopes = append([]string(nil), c.DefaultScopes...)
	return c
}
