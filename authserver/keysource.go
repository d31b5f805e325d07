package authserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// The remote key source of clients (requirement 22): JWK sets fetched on
// demand from a URL a client names (a CIMD client's jwks_uri, an owned
// client's jwks_uri) and cached. Anyone can name a CIMD client, so these
// URLs are the attacker's: they are fetched through the SSRF-safe CIMD
// fetcher (budgets, size caps, no private addresses), on the request that
// needs them, into a bounded cache. The operator-configured issuers
// (enterprise IdPs, workload issuers) are another job: their keys come from
// the guard's resourceguard.RemoteKeySource, refreshed in the background and
// kept through outages and restarts (issuerkeys.go).

// JWKSFetcher fetches a JWK set document. cimd.Fetcher implements it with
// the CIMD rules: https only, SSRF defences (special-use addresses refused
// after resolution and on the socket), no redirects, a 5 KiB cap, timeouts
// and fetch budgets charged to requester. ttl is how long the answer may be
// cached, from its HTTP headers. A failure that may pass implements
// Temporary() bool.
type JWKSFetcher interface {
	FetchJWKS(ctx context.Context, url, requester string) (body []byte, ttl time.Duration, err error)
}

// Defaults of RemoteKeysConfig.
const (
	DefaultJWKSMinTTL = 5 * time.Minute
	DefaultJWKSMaxTTL = time.Hour
	// DefaultJWKSRefetchInterval: an unknown kid refetches a cached set at
	// most this often.
	DefaultJWKSRefetchInterval = time.Minute
	// DefaultJWKSFailureTTL: a failed fetch is remembered this long, so
	// that a flood of assertions costs one fetch.
	DefaultJWKSFailureTTL = 10 * time.Second
	// maxJWKSEntries bounds the cache (anyone can name a CIMD client).
	maxJWKSEntries = 1024
)

// RemoteKeysConfig configures RemoteKeys.
type RemoteKeysConfig struct {
	// Fetcher retrieves the documents. Required.
	Fetcher JWKSFetcher
	// MinTTL and MaxTTL bound the cache lifetime taken from the response
	// (defaults 5m and 1h).
	MinTTL, MaxTTL time.Duration
	// RefetchInterval is the least time between two fetches of one URL
	// caused by an unknown kid (default 1m).
	RefetchInterval time.Duration
	// FailureTTL is how long a failed fetch is remembered (default 10s).
	FailureTTL time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// RemoteKeys caches remote JWK sets by URL. Concurrent fetches of one URL
// share one request; a set is kept for its TTL and refetched at most once
// per RefetchInterval when an assertion names a kid it lacks; after a
// failed refetch the previous set stays in use until its TTL ends. Safe for
// concurrent use.
type RemoteKeys struct {
	cfg     RemoteKeysConfig
	group   singleflight.Group
	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	keys      []PublicKey
	expires   time.Time // the set is fresh until then
	fetchedAt time.Time // last fetch attempt (success or failure)
	err       error     // last failure, remembered until failUntil
	failUntil time.Time
}

// NewRemoteKeys builds a RemoteKeys.
func NewRemoteKeys(cfg RemoteKeysConfig) (*RemoteKeys, error) {
	if cfg.Fetcher == nil {
		return nil, errors.New("authserver: remote keys need a fetcher")
	}
	if cfg.MinTTL < 0 || cfg.MaxTTL < 0 || cfg.RefetchInterval < 0 || cfg.FailureTTL < 0 {
		return nil, errors.New("authserver: remote keys: negative duration")
	}
	if cfg.MinTTL == 0 {
		cfg.MinTTL = DefaultJWKSMinTTL
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultJWKSMaxTTL
	}
	if cfg.MinTTL > cfg.MaxTTL {
		return nil, errors.New("authserver: remote keys: min ttl above max ttl")
	}
	if cfg.RefetchInterval == 0 {
		cfg.RefetchInterval = DefaultJWKSRefetchInterval
	}
	if cfg.FailureTTL == 0 {
		cfg.FailureTTL = DefaultJWKSFailureTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &RemoteKeys{cfg: cfg, entries: map[string]*jwksEntry{}}, nil
}

// Source returns the KeySource of the set at url; fetches are charged to
// requester (the client IP, for the fetcher's budgets).
func (r *RemoteKeys) Source(url, requester string) KeySource {
	return remoteSource{r: r, url: url, requester: requester}
}

type remoteSource struct {
	r              *RemoteKeys
	url, requester string
}

// AssertionKey implements KeySource.
func (s remoteSource) AssertionKey(ctx context.Context, kid string) (PublicKey, error) {
	return s.r.key(ctx, s.url, s.requester, kid)
}

func (r *RemoteKeys) key(ctx context.Context, url, requester, kid string) (PublicKey, error) {
	now := r.cfg.Now()
	r.mu.Lock()
	e := r.entries[url]
	var keys []PublicKey
	fresh, canRefetch := false, true
	if e != nil {
		keys = e.keys
		fresh = keys != nil && now.Before(e.expires)
		canRefetch = !now.Before(e.fetchedAt.Add(r.cfg.RefetchInterval))
		if e.err != nil && now.Before(e.failUntil) && !fresh {
			err := e.err
			r.mu.Unlock()
			return PublicKey{}, err
		}
	}
	r.mu.Unlock()

	if fresh {
		k, err := pickKey(keys, kid)
		if err == nil || !canRefetch {
			return k, err
		}
		// An unknown kid in a fresh set: the client may have rotated.
	}
	keys, err := r.fetch(ctx, url, requester)
	if err != nil {
		if fresh {
			// Keep serving the fresh set; the kid stays unknown.
			return PublicKey{}, ErrUnknownKey
		}
		return PublicKey{}, err
	}
	return pickKey(keys, kid)
}

// fetch fetches and parses url once for all concurrent callers and
// records the result.
func (r *RemoteKeys) fetch(ctx context.Context, url, requester string) ([]PublicKey, error) {
	v, err, _ := r.group.Do(url, func() (any, error) {
		body, ttl, err := r.cfg.Fetcher.FetchJWKS(context.WithoutCancel(ctx), url, requester)
		var keys []PublicKey
		if err == nil {
			keys, err = ParseJWKS(body)
			if err != nil {
				err = &jwksError{reason: "the JWK set is invalid", cause: err}
			}
		} else {
			err = &jwksError{reason: "the JWK set cannot be fetched", cause: err}
		}
		now := r.cfg.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		e := r.entries[url]
		if e == nil {
			r.evictLocked(now)
			e = &jwksEntry{}
			r.entries[url] = e
		}
		e.fetchedAt = now
		if err != nil {
			e.err, e.failUntil = err, now.Add(r.cfg.FailureTTL)
			return nil, err
		}
		ttl = min(max(ttl, r.cfg.MinTTL), r.cfg.MaxTTL)
		e.keys, e.expires, e.err = keys, now.Add(ttl), nil
		return keys, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]PublicKey), nil
}

// evictLocked makes room for one entry: expired entries first, then the
// one fetched longest ago.
func (r *RemoteKeys) evictLocked(now time.Time) {
	if len(r.entries) < maxJWKSEntries {
		return
	}
	var oldest string
	var oldestAt time.Time
	for u, e := range r.entries {
		if !now.Before(e.expires) && !now.Before(e.failUntil) {
			delete(r.entries, u)
			continue
		}
		if oldest == "" || e.fetchedAt.Before(oldestAt) {
			oldest, oldestAt = u, e.fetchedAt
		}
	}
	if len(r.entries) >= maxJWKSEntries {
		delete(r.entries, oldest)
	}
}

// jwksError is a failed JWK set fetch or parse, with a safe reason; it
// keeps the cause's Temporary and RetryAfter.
type jwksError struct {
	reason string
	cause  error
}

func (e *jwksError) Error() string { return fmt.Sprintf("authserver: %s: %v", e.reason, e.cause) }
func (e *jwksError) Unwrap() error { return e.cause }

// Temporary reports whether the cause may pass.
func (e *jwksError) Temporary() bool {
	var te temporaryError
	return errors.As(e.cause, &te) && te.Temporary()
}

// RetryAfter is the cause's suggestion (or a second).
func (e *jwksError) RetryAfter() time.Duration {
	var te temporaryError
	if errors.As(e.cause, &te) {
		return max(te.RetryAfter(), time.Second)
	}
	return time.Second
}
