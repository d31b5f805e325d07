package cimd

import (
	"context"
	"fmt"
	"time"
)

// MaxJWKSBytes caps a fetched JWK set (a client's jwks_uri), whatever
// FetcherConfig.MaxBytes allows for documents.
const MaxJWKSBytes = 5120

// JWK set cache bounds used by FetchJWKS for the returned lifetime.
const (
	jwksMinTTL = 5 * time.Minute
	jwksMaxTTL = time.Hour
)

// FetchJWKS fetches the JWK set at url (a "jwks_uri" of a private_key_jwt
// client) under the rules of Fetch: url must be a valid https URL with a
// path (IP literals only in development mode), special-use addresses are
// refused after resolution and on the socket, no redirect is followed, the
// budgets (requester, domain, host, global) apply and the untrusted-host
// timeout bounds it; the body is at most MaxJWKSBytes, served as
// application/json or application/jwk-set+json. ttl is the cache lifetime
// from Cache-Control / Expires, bounded to [5m, 1h] (a no-store answer gets
// 5m: a key set is needed at every token request). The body is not parsed
// here. Errors are those of Fetch (a url that is not acceptable wraps
// ErrInvalidClientID); temporary ones have Temporary() and RetryAfter().
func (f *Fetcher) FetchJWKS(ctx context.Context, url, requester string) ([]byte, time.Duration, error) {
	resp, err := f.fetchAs(ctx, url, fetchClass{requester: requester, jwks: true})
	if err != nil {
		return nil, 0, fmt.Errorf("cimd: jwks_uri: %w", err)
	}
	ttl, ok := cacheLifetime(resp.Header, resp.FetchedAt, jwksMinTTL, jwksMaxTTL)
	if !ok {
		ttl = jwksMinTTL
	}
	return resp.Body, ttl, nil
}
