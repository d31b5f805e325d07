package resourceguard

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/jwsalg"
)

// Remote key discovery for issuers other than ours: the guard's external
// issuer, and the authorization server's trusted issuers (enterprise IdPs
// and workload issuers, authserver/issuerkeys.go) — one implementation.
//
// RFC 8414 §3: the metadata is at the issuer's origin with
// /.well-known/oauth-authorization-server inserted before the issuer's path;
// §3.3: "the issuer value returned MUST be identical to the authorization
// server's issuer identifier value". OpenID Connect Discovery 1.0 §4 (the
// fallback): {issuer}/.well-known/openid-configuration. The JWKS (RFC 7517)
// at jwks_uri is cached.
//
// Resilience (requirement 29): the request path never waits for the
// network. Fetches run in the background: a failed one is retried with
// bounded exponential back-off, a good set is refreshed every MaxAge, an
// unknown kid starts a refetch at most once per MinRefreshInterval. While
// the issuer is down the last good keys stay in use; with a KeySetStore they
// survive a restart. While no key set is known at all, PublicKey fails with
// a *KeysUnavailableError and the guard answers 503 with Retry-After.

// RemoteOptions configures a RemoteKeySource.
type RemoteOptions struct {
	// Issuer is the exact issuer identifier; its metadata gives jwks_uri.
	Issuer string
	// JWKSURL skips discovery and fetches this JWKS directly.
	JWKSURL string
	// Client makes the requests (default: a client with a 10 s timeout that
	// never follows a redirect from https to http).
	Client *http.Client
	// MinRefreshInterval rate-limits the refetches started by unknown kids
	// (default 1 min).
	MinRefreshInterval time.Duration
	// MaxAge is how long a fetched key set is used before a background
	// refresh (default 15 min). Keys are still used after MaxAge while the
	// issuer is unreachable.
	MaxAge time.Duration
	// RetryMin and RetryMax bound the exponential back-off between failed
	// fetches: the first retry comes after RetryMin, each next one after
	// twice as long, never more than RetryMax (defaults 1 s and 2 min; up to
	// a quarter less, at random, so that many guards do not retry together).
	RetryMin, RetryMax time.Duration
	// Store, when set, keeps the last good metadata and JWKS (under a key
	// derived from the issuer, see StoreKey) and is read at start: when it
	// has a key set, the source starts from it without waiting for the
	// issuer and refreshes in the background. certmagic.Storage (Caddy's
	// storage) satisfies it.
	Store KeySetStore
	// AllowUnavailableStart lets the source start when the issuer is
	// unreachable and Store has no key set: PublicKey then fails with a
	// *KeysUnavailableError until a background fetch succeeds. Without it
	// the constructor fails, so that a wrong issuer is reported at once.
	AllowUnavailableStart bool
	// Logger and Now as in Config.
	Logger *slog.Logger
	Now    func() time.Time
}

// KeySetStore persists small blobs. Load returns an error wrapping
// fs.ErrNotExist when key is absent.
type KeySetStore interface {
	Load(ctx context.Context, key string) ([]byte, error)
	Store(ctx context.Context, key string, value []byte) error
}

// ErrKeysUnavailable is wrapped by the error of PublicKey while no key set
// of the issuer is known (it was unreachable since the start and nothing was
// persisted).
var ErrKeysUnavailable = errors.New("resourceguard: the issuer's signing keys are not available yet")

// KeysUnavailableError is returned by RemoteKeySource.PublicKey while no key
// set is known. The guard answers 503 with a Retry-After of RetryAfter.
type KeysUnavailableError struct {
	// RetryAfter is the time until the next fetch attempt (at least 1 s).
	RetryAfter time.Duration
}

func (e *KeysUnavailableError) Error() string { return ErrKeysUnavailable.Error() }

// Unwrap makes errors.Is(err, ErrKeysUnavailable) true.
func (e *KeysUnavailableError) Unwrap() error { return ErrKeysUnavailable }

// RemoteKeySource is a KeySource backed by an issuer's JWKS.
type RemoteKeySource struct {
	opts     RemoteOptions
	log      *slog.Logger
	now      func() time.Time
	life     context.Context // background fetches stop when it is done
	storeKey string

	mu       sync.RWMutex
	jwksURL  string
	metadata map[string]any
	keys     map[string]remoteKey // nil until a key set is known
	gen      atomic.Uint64

	// fetchMu serializes fetches; the fields below it are guarded by it.
	fetchMu     sync.Mutex
	discovered  bool
	fingerprint [32]byte
	persisted   [32]byte // of the set in Store (jwks_uri and keys)

	// The schedule, in unix ns, read without a lock on the hot path.
	next        atomic.Int64
	lastAttempt atomic.Int64
	schedMu     sync.Mutex
	failures    int // guarded by schedMu
	refreshing  atomic.Bool
	// fetched is closed when the background fetch in flight ends (a
	// request that met an unknown kid waits on it, briefly).
	fetched atomic.Pointer[chan struct{}]
}

// unknownKidWait bounds how long a request that meets an unknown kid waits
// for the refetch it started (at most one a MinRefreshInterval): after a
// rotation at the issuer the first token signed with the new key is
// accepted, and a blocked issuer still costs a request at most this long.
const unknownKidWait = 500 * time.Millisecond

type remoteKey struct {
	key crypto.PublicKey
	alg string
}

const (
	maxMetadataBytes = 256 << 10
	maxJWKSBytes     = 1 << 20
	fetchTimeout     = 10 * time.Second
	// startTimeout bounds the first fetch when the source may start without
	// keys (a blackholed issuer must not hold up the whole server's start).
	startTimeout = 5 * time.Second
	// attemptTimeout bounds one background attempt (discovery and JWKS).
	attemptTimeout = 2 * fetchTimeout
	storeTimeout   = 5 * time.Second
)

// NewRemoteKeySource discovers jwks_uri from the issuer's RFC 8414 metadata
// (then its OpenID configuration), and fetches the JWKS once. It fails when
// neither can be loaded, so that a wrong issuer is reported at startup. ctx
// bounds the source's background fetches.
func NewRemoteKeySource(ctx context.Context, issuer string, client *http.Client, logger *slog.Logger) (*RemoteKeySource, error) {
	return NewRemoteKeySourceWithOptions(ctx, RemoteOptions{Issuer: issuer, Client: client, Logger: logger})
}

// NewRemoteKeySourceWithOptions is NewRemoteKeySource with every option.
// When opts.Store holds a key set for the issuer the source starts from it
// at once and refreshes in the background; otherwise the first fetch is
// made now. ctx bounds the source's life: background fetches stop when it
// is done. Call Run to refresh on schedule even when no request comes.
func NewRemoteKeySourceWithOptions(ctx context.Context, opts RemoteOptions) (*RemoteKeySource, error) {
	if opts.Issuer == "" && opts.JWKSURL == "" {
		return nil, errors.New("resourceguard: remote key source needs an issuer or a JWKS URL")
	}
	if opts.Client == nil {
		opts.Client = defaultHTTPClient()
	}
	if opts.MinRefreshInterval <= 0 {
		opts.MinRefreshInterval = time.Minute
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 15 * time.Minute
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 2 * time.Minute
	}
	opts.RetryMax = max(opts.RetryMax, opts.RetryMin)
	s := &RemoteKeySource{opts: opts, log: opts.Logger, now: opts.Now, life: ctx}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.JWKSURL != "" {
		if err := checkFetchURL(opts.JWKSURL, opts.Issuer); err != nil {
			return nil, err
		}
		s.jwksURL, s.discovered = opts.JWKSURL, true
	} else if _, err := metadataURLs(opts.Issuer); err != nil {
		return nil, err
	}
	s.storeKey = StoreKey(opts.Issuer, opts.JWKSURL)
	if opts.Store != nil && s.loadPersisted(ctx) {
		// Refresh at once, in the background.
		s.kick(false)
		return s, nil
	}
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	if opts.AllowUnavailableStart {
		actx, cancel = context.WithTimeout(ctx, startTimeout)
	}
	defer cancel()
	s.fetchMu.Lock()
	err := s.attempt(actx)
	s.fetchMu.Unlock()
	if err != nil && !opts.AllowUnavailableStart {
		return nil, err
	}
	return s, nil
}

func defaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: fetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("resourceguard: too many redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("resourceguard: redirect from https to http refused")
			}
			return nil
		},
	}
}

// StoreKey is where a RemoteKeySource for issuer (or, without one, for
// jwksURL) keeps its last good key set in its KeySetStore.
func StoreKey(issuer, jwksURL string) string {
	h := sha256.Sum256([]byte(issuer + "\n" + jwksURL))
	return "mcpauth/guard/jwks/" + hex.EncodeToString(h[:16]) + ".json"
}

// JWKSURL is the JWKS location in use ("" until discovery succeeded).
func (s *RemoteKeySource) JWKSURL() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.jwksURL
}

// AuthorizationServerMetadata returns the discovered (or persisted) metadata
// (nil when JWKSURL was given or before discovery succeeded).
func (s *RemoteKeySource) AuthorizationServerMetadata() map[string]any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.metadata
}

// Generation implements KeySource: it changes whenever a fetch brings a
// different key set.
func (s *RemoteKeySource) Generation() uint64 { return s.gen.Load() }

// Available reports whether a key set is known.
func (s *RemoteKeySource) Available() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys != nil
}

// PublicKey implements KeySource. A due refresh runs in the background; a
// known kid never waits. An unknown kid starts a refetch (at most one a
// MinRefreshInterval) and waits for the fetch in flight at most
// unknownKidWait. While no key set is known it returns a
// *KeysUnavailableError.
func (s *RemoteKeySource) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, string, error) {
	s.mu.RLock()
	keys := s.keys
	k, ok := keys[kid]
	s.mu.RUnlock()
	if keys == nil {
		s.kick(false)
		return nil, "", &KeysUnavailableError{RetryAfter: s.retryAfter()}
	}
	if ok {
		s.kick(false)
		return k.key, k.alg, nil
	}
	// An unknown kid: a refetch (if none was made within a minute) may
	// bring it. Wait for the fetch in flight, if any, at most
	// unknownKidWait, then look again.
	if !s.kick(true) {
		return nil, "", ErrUnknownKey
	}
	if ch := s.fetched.Load(); ch != nil {
		t := time.NewTimer(unknownKidWait)
		select {
		case <-*ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	s.mu.RLock()
	k, ok = s.keys[kid]
	s.mu.RUnlock()
	if !ok {
		return nil, "", ErrUnknownKey
	}
	return k.key, k.alg, nil
}

// Run refreshes on schedule until ctx is done, so that the source recovers
// (and refreshes a good set every MaxAge) even when no request comes. Call
// it in its own goroutine. Without Run, fetches are started by PublicKey.
func (s *RemoteKeySource) Run(ctx context.Context) {
	t := time.NewTicker(min(max(s.opts.RetryMin, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.kick(false)
		}
	}
}

// Refresh fetches the JWKS now, unless a fetch was attempted within
// MinRefreshInterval. It reports whether a fetch was made and succeeded.
func (s *RemoteKeySource) Refresh(ctx context.Context) bool {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if s.recentAttempt(s.now()) {
		return false
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
	defer cancel()
	return s.attempt(actx) == nil
}

// kick starts a background fetch when one is due: the scheduled refresh or
// retry, or (unknownKid) a refetch when none was attempted within
// MinRefreshInterval. It is on the hot path: one atomic load when nothing
// is due.
//
// It reports whether a fetch is in flight because of this call or another.
func (s *RemoteKeySource) kick(unknownKid bool) bool {
	now := s.now()
	if now.UnixNano() < s.next.Load() {
		if !unknownKid {
			return false
		}
		if s.recentAttempt(now) {
			return s.refreshing.Load()
		}
	}
	if s.life.Err() != nil {
		return false
	}
	if !s.refreshing.CompareAndSwap(false, true) {
		return true
	}
	done := make(chan struct{})
	s.fetched.Store(&done)
	go func() {
		defer close(done)
		defer s.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(s.life, attemptTimeout)
		defer cancel()
		s.fetchMu.Lock()
		defer s.fetchMu.Unlock()
		_ = s.attempt(ctx)
	}()
	return true
}

// recentAttempt reports whether a fetch was attempted within
// MinRefreshInterval before now.
func (s *RemoteKeySource) recentAttempt(now time.Time) bool {
	last := s.lastAttempt.Load()
	return last != 0 && now.UnixNano()-last < int64(s.opts.MinRefreshInterval)
}

// retryAfter is the time until the next attempt, at least 1 s.
func (s *RemoteKeySource) retryAfter() time.Duration {
	d := time.Duration(s.next.Load() - s.now().UnixNano())
	return min(max(d, time.Second), s.opts.RetryMax)
}

// attempt discovers (once) and fetches the JWKS, then schedules the next
// attempt. fetchMu must be held.
func (s *RemoteKeySource) attempt(ctx context.Context) error {
	s.lastAttempt.Store(s.now().UnixNano())
	err := s.fetch(ctx)
	s.schedMu.Lock()
	defer s.schedMu.Unlock()
	now := s.now()
	if err == nil {
		if s.failures > 0 {
			s.log.Info("resourceguard: the issuer's keys are fetched again", "issuer", s.opts.Issuer, "jwks_uri", s.JWKSURL(), "failed_attempts", s.failures)
		}
		s.failures = 0
		s.next.Store(now.Add(s.opts.MaxAge).UnixNano())
		return nil
	}
	s.failures++
	wait := s.backoff(s.failures)
	s.next.Store(now.Add(wait).UnixNano())
	if s.life.Err() != nil {
		return err // shutting down
	}
	if s.Available() {
		s.log.Warn("resourceguard: JWKS refresh failed; keeping the last good keys", "issuer", s.opts.Issuer, "retry_in", wait.String(), "error", err)
	} else {
		s.log.Error("resourceguard: the issuer's keys are unavailable; requests that need them get 503 until a fetch succeeds",
			"issuer", s.opts.Issuer, "retry_in", wait.String(), "error", err)
	}
	return err
}

// backoff is the wait after the n-th consecutive failure: RetryMin·2^(n-1)
// capped at RetryMax, less up to a quarter at random.
func (s *RemoteKeySource) backoff(n int) time.Duration {
	d := s.opts.RetryMax
	if n <= 32 {
		if e := s.opts.RetryMin << (n - 1); e > 0 && e < d {
			d = e
		}
	}
	return d - rand.N(d/4+1)
}

// fetch discovers jwks_uri when not done yet, loads the JWKS and swaps the
// key set in when it is usable, then persists it when it changed. fetchMu
// must be held.
func (s *RemoteKeySource) fetch(ctx context.Context) error {
	if !s.discovered {
		jwks, md, err := discover(ctx, s.opts.Client, s.opts.Issuer)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.jwksURL, s.metadata = jwks, md
		s.mu.Unlock()
		s.discovered = true
	}
	jwksURL := s.JWKSURL()
	body, err := getJSON(ctx, s.opts.Client, jwksURL, maxJWKSBytes)
	if err != nil {
		return err
	}
	keys, fp, err := parseJWKS(body, s.log)
	if err != nil {
		return err
	}
	s.install(keys, fp)
	if s.opts.Store != nil {
		s.persist(ctx, jwksURL, body, fp)
	}
	return nil
}

// install swaps in keys when they differ from the current set. fetchMu must
// be held.
func (s *RemoteKeySource) install(keys map[string]remoteKey, fp [32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil || fp != s.fingerprint {
		s.keys = keys
		s.fingerprint = fp
		s.gen.Add(1)
	}
}

// persistedKeySet is the document kept in the KeySetStore.
type persistedKeySet struct {
	Version   int             `json:"version"`
	Issuer    string          `json:"issuer,omitempty"`
	JWKSURI   string          `json:"jwks_uri"`
	Metadata  map[string]any  `json:"metadata,omitempty"`
	JWKS      json.RawMessage `json:"jwks"`
	FetchedAt time.Time       `json:"fetched_at"`
}

func persistedFingerprint(jwksURL string, fp [32]byte) [32]byte {
	return sha256.Sum256(append([]byte(jwksURL+"\n"), fp[:]...))
}

// persist stores the key set when it differs from the stored one. A failure
// is logged: the keys in memory serve regardless. fetchMu must be held.
func (s *RemoteKeySource) persist(ctx context.Context, jwksURL string, body []byte, fp [32]byte) {
	pfp := persistedFingerprint(jwksURL, fp)
	if pfp == s.persisted {
		return
	}
	doc, err := json.Marshal(persistedKeySet{Version: 1, Issuer: s.opts.Issuer, JWKSURI: jwksURL,
		Metadata: s.AuthorizationServerMetadata(), JWKS: body, FetchedAt: s.now().UTC()})
	if err != nil {
		s.log.Warn("resourceguard: encoding the key set for storage", "error", err)
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := s.opts.Store.Store(sctx, s.storeKey, doc); err != nil {
		s.log.Warn("resourceguard: persisting the issuer's key set failed", "issuer", s.opts.Issuer, "key", s.storeKey, "error", err)
		return
	}
	s.persisted = pfp
}

// loadPersisted installs the stored key set, when there is a usable one for
// this issuer. It reports whether it did.
func (s *RemoteKeySource) loadPersisted(ctx context.Context) bool {
	lctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	blob, err := s.opts.Store.Load(lctx, s.storeKey)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("resourceguard: reading the persisted key set failed", "issuer", s.opts.Issuer, "key", s.storeKey, "error", err)
		}
		return false
	}
	doc, keys, fp, err := decodePersisted(blob, s.opts.Issuer, s.opts.JWKSURL, s.log)
	if err != nil {
		s.log.Warn("resourceguard: ignoring the persisted key set", "issuer", s.opts.Issuer, "key", s.storeKey, "error", err)
		return false
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	s.mu.Lock()
	s.jwksURL, s.metadata = doc.JWKSURI, doc.Metadata
	s.mu.Unlock()
	s.install(keys, fp)
	s.persisted = persistedFingerprint(doc.JWKSURI, fp)
	s.log.Info("resourceguard: using the persisted key set until the issuer answers", "issuer", s.opts.Issuer, "fetched_at", doc.FetchedAt)
	return true
}

// decodePersisted parses a stored key set and checks that it belongs to
// issuer (and jwksURL, when configured).
func decodePersisted(blob []byte, issuer, jwksURL string, log *slog.Logger) (persistedKeySet, map[string]remoteKey, [32]byte, error) {
	var doc persistedKeySet
	var fp [32]byte
	if len(blob) > maxJWKSBytes+maxMetadataBytes+4096 {
		return doc, nil, fp, errors.New("resourceguard: persisted key set too large")
	}
	if err := json.Unmarshal(blob, &doc); err != nil {
		return doc, nil, fp, fmt.Errorf("resourceguard: persisted key set: %w", err)
	}
	if doc.Version != 1 {
		return doc, nil, fp, fmt.Errorf("resourceguard: persisted key set version %d", doc.Version)
	}
	if doc.Issuer != issuer || (jwksURL != "" && doc.JWKSURI != jwksURL) {
		return doc, nil, fp, errors.New("resourceguard: persisted key set is for another issuer")
	}
	if err := checkFetchURL(doc.JWKSURI, issuer); err != nil {
		return doc, nil, fp, err
	}
	keys, fp, err := parseJWKS(doc.JWKS, log)
	if err != nil {
		return doc, nil, fp, err
	}
	return doc, keys, fp, nil
}

func getJSON(ctx context.Context, client *http.Client, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("resourceguard: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("resourceguard: fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("resourceguard: fetch %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err == nil {
		err = ctx.Err() // a body that ends only after the deadline is not a document
	}
	if err != nil {
		return nil, fmt.Errorf("resourceguard: fetch %s: %w", u, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("resourceguard: fetch %s: document larger than %d bytes", u, limit)
	}
	return body, nil
}

// metadataURLs lists the discovery URLs for issuer, RFC 8414 first.
func metadataURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("resourceguard: issuer %q is not an https URL without query or fragment", issuer)
	}
	origin := u.Scheme + "://" + u.Host
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	return []string{
		origin + "/.well-known/oauth-authorization-server" + path,
		origin + path + "/.well-known/openid-configuration",
		origin + "/.well-known/openid-configuration" + path,
	}, nil
}

func discover(ctx context.Context, client *http.Client, issuer string) (string, map[string]any, error) {
	urls, err := metadataURLs(issuer)
	if err != nil {
		return "", nil, err
	}
	var errs []error
	for _, mu := range slices.Compact(urls) {
		body, err := getJSON(ctx, client, mu, maxMetadataBytes)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var md map[string]any
		if err := json.Unmarshal(body, &md); err != nil {
			errs = append(errs, fmt.Errorf("resourceguard: %s: %w", mu, err))
			continue
		}
		if iss, _ := md["issuer"].(string); iss != issuer {
			errs = append(errs, fmt.Errorf("resourceguard: %s: issuer %q does not match %q", mu, iss, issuer))
			continue
		}
		jwks, _ := md["jwks_uri"].(string)
		if err := checkFetchURL(jwks, issuer); err != nil {
			errs = append(errs, err)
			continue
		}
		return jwks, md, nil
	}
	return "", nil, fmt.Errorf("resourceguard: discovery for %q failed: %w", issuer, errors.Join(errs...))
}

// checkFetchURL requires https, or http only when the issuer itself is http
// (development).
func checkFetchURL(s, issuer string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("resourceguard: jwks_uri %q is not an absolute URL", s)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && strings.HasPrefix(issuer, "http://")) {
		return nil
	}
	return fmt.Errorf("resourceguard: jwks_uri %q must be https", s)
}

// jwk is the subset of RFC 7517/7518/8037 members we read.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	D      string   `json:"d"`
}

// parseJWKS returns the usable verification keys by kid and a fingerprint of
// the set. Keys without kid, for encryption, private, unsupported or
// malformed are skipped; a set with no usable key is an error.
func parseJWKS(body []byte, log *slog.Logger) (map[string]remoteKey, [32]byte, error) {
	var fp [32]byte
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fp, fmt.Errorf("resourceguard: JWKS: %w", err)
	}
	keys := make(map[string]remoteKey, len(set.Keys))
	dup := map[string]bool{}
	for _, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			log.Debug("resourceguard: JWKS: skipping malformed key", "error", err)
			continue
		}
		rk, err := k.publicKey()
		if err != nil {
			log.Debug("resourceguard: JWKS: skipping key", "kid", k.Kid, "error", err)
			continue
		}
		if _, ok := keys[k.Kid]; ok || dup[k.Kid] {
			// Ambiguous kid: use neither.
			log.Warn("resourceguard: JWKS: duplicate kid, key ignored", "kid", k.Kid)
			delete(keys, k.Kid)
			dup[k.Kid] = true
			continue
		}
		keys[k.Kid] = rk
	}
	if len(keys) == 0 {
		return nil, fp, errors.New("resourceguard: JWKS has no usable signature verification key")
	}
	kids := make([]string, 0, len(keys))
	for kid := range keys {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	h := sha256.New()
	for _, kid := range kids {
		der, err := x509.MarshalPKIXPublicKey(keys[kid].key)
		if err != nil {
			return nil, fp, fmt.Errorf("resourceguard: JWKS: %w", err)
		}
		fmt.Fprintf(h, "%d:%s|%s|%d:", len(kid), kid, keys[kid].alg, len(der))
		h.Write(der)
	}
	copy(fp[:], h.Sum(nil))
	return keys, fp, nil
}

func (k jwk) publicKey() (remoteKey, error) {
	var rk remoteKey
	if k.Kid == "" {
		return rk, errors.New("no kid")
	}
	if k.Use != "" && k.Use != "sig" {
		return rk, errors.New("not a signature key")
	}
	if len(k.KeyOps) > 0 && !slices.Contains(k.KeyOps, "verify") {
		return rk, errors.New("key_ops excludes verify")
	}
	if k.D != "" {
		return rk, errors.New("private key published")
	}
	switch k.Kty {
	case "EC":
		var curve elliptic.Curve
		var size int
		switch k.Crv {
		case "P-256":
			curve, size, rk.alg = elliptic.P256(), 32, "ES256"
		case "P-384":
			curve, size, rk.alg = elliptic.P384(), 48, "ES384"
		case "P-521":
			curve, size, rk.alg = elliptic.P521(), 66, "ES512"
		default:
			return rk, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return rk, errors.New("bad EC coordinates")
		}
		pt := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
		if err != nil {
			return rk, fmt.Errorf("bad EC point: %w", err)
		}
		rk.key = pub
	case "OKP":
		if k.Crv != "Ed25519" {
			return rk, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err := b64.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return rk, errors.New("bad Ed25519 key")
		}
		rk.key, rk.alg = ed25519.PublicKey(x), "EdDSA"
	case "RSA":
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 || len(n) == 0 || n[0] == 0 {
			return rk, errors.New("bad RSA key")
		}
		N := new(big.Int).SetBytes(n)
		E := new(big.Int).SetBytes(e)
		if N.BitLen() < jwsalg.MinRSABits || N.BitLen() > 16384 || E.Int64() < 3 || E.Int64() > 1<<31-1 || E.Bit(0) == 0 {
			return rk, errors.New("unacceptable RSA key size or exponent")
		}
		rk.key, rk.alg = &rsa.PublicKey{N: N, E: int(E.Int64())}, "RS256"
	default:
		return rk, fmt.Errorf("unsupported kty %q", k.Kty)
	}
	if k.Alg != "" {
		a, ok := supportedAlgs[k.Alg]
		if !ok {
			return rk, fmt.Errorf("unsupported alg %q", k.Alg)
		}
		fits := (a.kind == "rsa" || a.kind == "pss") && k.Kty == "RSA" ||
			a.kind == "ed" && k.Kty == "OKP" ||
			a.kind == "ec" && k.Alg == rk.alg
		if !fits {
			return rk, fmt.Errorf("alg %q does not fit the key", k.Alg)
		}
		rk.alg = k.Alg
	}
	return rk, nil
}
