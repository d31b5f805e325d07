package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/jsonobject"
)

// Keys of operator-configured issuers (requirements 23, 24): enterprise
// IdPs that issue ID-JAGs and workload issuers (Kubernetes, GitHub Actions,
// SPIFFE). Their JWK sets are found through discovery (OpenID Connect
// Discovery 1.0 §4, then RFC 8414 §3) and cached by the same RemoteKeys as
// the keys of private_key_jwt clients, with KeepStale: while the issuer is
// down its last good keys keep verifying.

// Limits of trusted-issuer documents.
const (
	// maxIssuerDocBytes caps a discovery document or JWK set of a trusted
	// issuer (sets with x5c chains run to several KiB).
	maxIssuerDocBytes = 64 << 10
	// DefaultIssuerKeepStale is how long an issuer's keys stay in use past
	// their cache lifetime while it is unreachable.
	DefaultIssuerKeepStale = 7 * 24 * time.Hour
	// issuerFetchTimeout bounds one request to a trusted issuer.
	issuerFetchTimeout = 10 * time.Second
)

// IssuerFetcher fetches the discovery documents and JWK sets of issuers the
// operator configured. The operator named these URLs, so private addresses
// are allowed (a cluster's issuer is often internal); https is required
// except on loopback hosts; redirects are not followed; answers are capped
// at 64 KiB; a network failure or 5xx is temporary.
type IssuerFetcher struct {
	// Client makes the requests (nil: a client with a 10 s timeout).
	Client *http.Client
}

// fetchError is a failed trusted-issuer fetch.
type fetchError struct {
	msg       string
	temporary bool
}

func (e *fetchError) Error() string             { return "authserver: issuer fetch: " + e.msg }
func (e *fetchError) Temporary() bool           { return e.temporary }
func (e *fetchError) RetryAfter() time.Duration { return 5 * time.Second }

// FetchJWKS implements JWKSFetcher (any JSON document, in fact).
func (f IssuerFetcher) FetchJWKS(ctx context.Context, rawURL, _ string) ([]byte, time.Duration, error) {
	if err := checkIssuerURL(rawURL); err != nil {
		return nil, 0, &fetchError{msg: err.Error()}
	}
	c := f.Client
	if c == nil {
		c = &http.Client{Timeout: issuerFetchTimeout}
	}
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ctx, cancel := context.WithTimeout(ctx, issuerFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, &fetchError{msg: "bad URL"}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := cc.Do(req)
	if err != nil {
		return nil, 0, &fetchError{msg: "request failed", temporary: true}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, &fetchError{msg: "status " + strconv.Itoa(resp.StatusCode), temporary: resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIssuerDocBytes+1))
	if err != nil {
		return nil, 0, &fetchError{msg: "read failed", temporary: true}
	}
	if len(body) > maxIssuerDocBytes {
		return nil, 0, &fetchError{msg: "document too large"}
	}
	return body, maxAge(resp.Header.Get("Cache-Control")), nil
}

// maxAge reads max-age from Cache-Control (0 when absent or no-store).
func maxAge(cc string) time.Duration {
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		if d == "no-store" || d == "no-cache" {
			return 0
		}
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return 0
}

// checkIssuerURL accepts https URLs, and http ones on loopback hosts.
func checkIssuerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return errors.New("not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return nil
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return errors.New("https is required (http only on loopback)")
}

// ValidateIssuerURL checks an operator-configured issuer identifier.
func ValidateIssuerURL(raw string) error {
	if err := checkIssuerURL(raw); err != nil {
		return err
	}
	if strings.ContainsAny(raw, "?#") {
		return errors.New("an issuer has no query or fragment")
	}
	return nil
}

// issuerKeys is the KeySource of one trusted issuer: its jwks_uri
// (configured, or discovered once and then kept) through RemoteKeys.
type issuerKeys struct {
	keys    *RemoteKeys
	fetcher JWKSFetcher
	issuer  string
	now     func() time.Time

	mu        sync.Mutex
	jwksURI   string
	nextTry   time.Time // discovery failed: not before then
	lastError error
}

// AssertionKey implements KeySource.
func (k *issuerKeys) AssertionKey(ctx context.Context, kid string) (PublicKey, error) {
	u, err := k.jwks(ctx)
	if err != nil {
		return PublicKey{}, err
	}
	return k.keys.Source(u, "issuer:"+k.issuer).AssertionKey(ctx, kid)
}

func (k *issuerKeys) jwks(ctx context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.jwksURI != "" {
		return k.jwksURI, nil
	}
	if now := k.now(); now.Before(k.nextTry) {
		return "", k.lastError
	}
	u, err := discoverJWKSURI(ctx, k.fetcher, k.issuer)
	if err != nil {
		k.nextTry, k.lastError = k.now().Add(DefaultJWKSFailureTTL), &jwksError{reason: "the issuer's metadata cannot be fetched", cause: err}
		return "", k.lastError
	}
	k.jwksURI = u
	return u, nil
}

// discoverJWKSURI reads jwks_uri from the issuer's OpenID configuration
// ({issuer}/.well-known/openid-configuration), else from its RFC 8414
// metadata; the document's issuer must be exactly the issuer.
func discoverJWKSURI(ctx context.Context, f JWKSFetcher, issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", err
	}
	p := strings.TrimSuffix(u.Path, "/")
	candidates := []string{
		strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration",
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + p,
	}
	var last error
	for _, c := range candidates {
		body, _, err := f.FetchJWKS(ctx, c, "issuer:"+issuer)
		if err != nil {
			last = err
			continue
		}
		doc, err := jsonobject.Decode(body)
		if err != nil {
			last = errors.New("the metadata is not a JSON object")
			continue
		}
		var iss, jwks string
		_ = json.Unmarshal(doc["issuer"], &iss)
		_ = json.Unmarshal(doc["jwks_uri"], &jwks)
		if iss != issuer {
			last = fmt.Errorf("the metadata names issuer %q", iss)
			continue
		}
		if err := checkIssuerURL(jwks); err != nil {
			last = fmt.Errorf("jwks_uri: %w", err)
			continue
		}
		return jwks, nil
	}
	return "", last
}
