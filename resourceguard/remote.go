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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Remote key discovery for issuers other than ours.
//
// RFC 8414 §3: the metadata is at the issuer's origin with
// /.well-known/oauth-authorization-server inserted before the issuer's path;
// §3.3: "the issuer value returned MUST be identical to the authorization
// server's issuer identifier value". OpenID Connect Discovery 1.0 §4 (the
// fallback): {issuer}/.well-known/openid-configuration. The JWKS (RFC 7517)
// at jwks_uri is cached; an unknown kid triggers a refresh (rate-limited), a
// stale set is refreshed in the background, and when the issuer is down the
// last good keys stay in use.

// RemoteOptions configures a RemoteKeySource.
type RemoteOptions struct {
	// Issuer is the exact issuer identifier; its metadata gives jwks_uri.
	Issuer string
	// JWKSURL skips discovery and fetches this JWKS directly.
	JWKSURL string
	// Client makes the requests (default: a client with a 10 s timeout that
	// never follows a redirect from https to http).
	Client *http.Client
	// MinRefreshInterval rate-limits fetches triggered by unknown kids
	// (default 30 s).
	MinRefreshInterval time.Duration
	// MaxAge is how long a fetched key set is used before a background
	// refresh (default 15 min). Keys are still used after MaxAge while the
	// issuer is unreachable.
	MaxAge time.Duration
	// Logger and Now as in Config.
	Logger *slog.Logger
	Now    func() time.Time
}

// RemoteKeySource is a KeySource backed by an issuer's JWKS.
type RemoteKeySource struct {
	opts     RemoteOptions
	jwksURL  string
	metadata map[string]any
	log      *slog.Logger
	now      func() time.Time

	mu          sync.RWMutex
	keys        map[string]remoteKey
	fingerprint [32]byte
	fetched     time.Time
	gen         atomic.Uint64

	fetchMu     sync.Mutex
	lastAttempt time.Time // guarded by fetchMu
	refreshing  atomic.Bool
}

type remoteKey struct {
	key crypto.PublicKey
	alg string
}

const (
	maxMetadataBytes = 256 << 10
	maxJWKSBytes     = 1 << 20
	fetchTimeout     = 10 * time.Second
)

// NewRemoteKeySource discovers jwks_uri from the issuer's RFC 8414 metadata
// (then its OpenID configuration), and fetches the JWKS once. It fails when
// neither can be loaded, so that a wrong issuer is reported at startup.
func NewRemoteKeySource(ctx context.Context, issuer string, client *http.Client, logger *slog.Logger) (*RemoteKeySource, error) {
	return NewRemoteKeySourceWithOptions(ctx, RemoteOptions{Issuer: issuer, Client: client, Logger: logger})
}

// NewRemoteKeySourceWithOptions is NewRemoteKeySource with every option.
func NewRemoteKeySourceWithOptions(ctx context.Context, opts RemoteOptions) (*RemoteKeySource, error) {
	if opts.Issuer == "" && opts.JWKSURL == "" {
		return nil, errors.New("resourceguard: remote key source needs an issuer or a JWKS URL")
	}
	if opts.Client == nil {
		opts.Client = defaultHTTPClient()
	}
	if opts.MinRefreshInterval <= 0 {
		opts.MinRefreshInterval = 30 * time.Second
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 15 * time.Minute
	}
	s := &RemoteKeySource{opts: opts, log: opts.Logger, now: opts.Now, keys: map[string]remoteKey{}}
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
		s.jwksURL = opts.JWKSURL
	} else {
		jwks, md, err := discover(ctx, opts.Client, opts.Issuer)
		if err != nil {
			return nil, err
		}
		s.jwksURL, s.metadata = jwks, md
	}
	s.fetchMu.Lock()
	s.lastAttempt = s.now()
	err := s.fetch(ctx)
	s.fetchMu.Unlock()
	if err != nil {
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

// JWKSURL is the JWKS location in use.
func (s *RemoteKeySource) JWKSURL() string { return s.jwksURL }

// AuthorizationServerMetadata returns the discovered metadata (nil when
// JWKSURL was given).
func (s *RemoteKeySource) AuthorizationServerMetadata() map[string]any { return s.metadata }

// Generation implements KeySource: it changes whenever a fetch brings a
// different key set.
func (s *RemoteKeySource) Generation() uint64 { return s.gen.Load() }

// PublicKey implements KeySource.
func (s *RemoteKeySource) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, string, error) {
	s.mu.RLock()
	k, ok := s.keys[kid]
	stale := s.now().Sub(s.fetched) > s.opts.MaxAge
	s.mu.RUnlock()
	if ok {
		if stale {
			s.refreshAsync()
		}
		return k.key, k.alg, nil
	}
	s.refresh(ctx)
	s.mu.RLock()
	k, ok = s.keys[kid]
	s.mu.RUnlock()
	if ok {
		return k.key, k.alg, nil
	}
	return nil, "", ErrUnknownKey
}

// Refresh fetches the JWKS now, subject to the rate limit. It reports
// whether a fetch was made and succeeded.
func (s *RemoteKeySource) Refresh(ctx context.Context) bool { return s.refresh(ctx) }

func (s *RemoteKeySource) refresh(ctx context.Context) bool {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	now := s.now()
	if now.Sub(s.lastAttempt) < s.opts.MinRefreshInterval {
		return false
	}
	s.lastAttempt = now
	// The fetch outlives a cancelled request: its result serves everyone.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	if err := s.fetch(fctx); err != nil {
		s.log.Warn("resourceguard: JWKS refresh failed; keeping the last good keys", "jwks_uri", s.jwksURL, "error", err)
		return false
	}
	return true
}

func (s *RemoteKeySource) refreshAsync() {
	if !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.refreshing.Store(false)
		s.refresh(context.Background())
	}()
}

// fetch loads the JWKS and swaps the key set in when it is usable.
// fetchMu must be held.
func (s *RemoteKeySource) fetch(ctx context.Context) error {
	body, err := getJSON(ctx, s.opts.Client, s.jwksURL, maxJWKSBytes)
	if err != nil {
		return err
	}
	keys, fp, err := parseJWKS(body, s.log)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetched = s.now()
	if fp != s.fingerprint {
		s.keys = keys
		s.fingerprint = fp
		s.gen.Add(1)
	}
	return nil
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
		if N.BitLen() < minRSABits || N.BitLen() > 16384 || E.Int64() < 3 || E.Int64() > 1<<31-1 || E.Bit(0) == 0 {
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
