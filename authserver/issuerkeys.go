package authserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// Keys of operator-configured issuers (requirements 23, 24): enterprise
// IdPs that issue ID-JAGs and workload issuers (Kubernetes, GitHub Actions,
// SPIFFE). They come from the guard's one remote key source,
// resourceguard.RemoteKeySource, as the keys of the guard's external
// issuers do: jwks_uri discovered from the issuer's metadata (RFC 8414 §3,
// then OpenID Connect Discovery 1.0 §4; the document's issuer must be the
// configured one) unless configured; fetched in the background, retried
// with bounded back-off and refreshed on schedule, never on the request
// path; an unknown kid starts at most one refetch a minute; the last good
// set stays in use while the issuer is down and is persisted in
// Config.IssuerKeyStore, so that a restart during an outage still
// verifies. An issuer unreachable at start does not fail the server: its
// assertions are refused 503 temporarily_unavailable (issuer_keys_unavailable)
// until its keys are known.

// issuerKeys adapts a RemoteKeySource to KeySource. The key's algorithm is
// the one the source fixes for it (its JWK "alg", else the one its type
// implies: RS256 for RSA), as at the guard.
type issuerKeys struct {
	src *resourceguard.RemoteKeySource
}

// AssertionKey implements KeySource. A token of a trusted issuer must name
// its key (kid): the source keeps only keys with a kid, and an empty kid
// never starts a refetch.
func (k issuerKeys) AssertionKey(ctx context.Context, kid string) (PublicKey, error) {
	if kid == "" {
		return PublicKey{}, fmt.Errorf("%w: a trusted issuer's token must name its key (kid)", ErrUnknownKey)
	}
	key, alg, err := k.src.PublicKey(ctx, kid)
	if err == nil {
		return PublicKey{KeyID: kid, Alg: alg, Key: key}, nil
	}
	if errors.Is(err, resourceguard.ErrUnknownKey) {
		return PublicKey{}, ErrUnknownKey
	}
	var ue *resourceguard.KeysUnavailableError
	if errors.As(err, &ue) {
		return PublicKey{}, &issuerKeysUnavailable{retry: ue.RetryAfter}
	}
	return PublicKey{}, err
}

// issuerKeysUnavailable: no key set of the issuer is known yet (it was
// unreachable since the start and nothing was persisted). Temporary.
type issuerKeysUnavailable struct{ retry time.Duration }

func (e *issuerKeysUnavailable) Error() string {
	return "authserver: " + resourceguard.ErrKeysUnavailable.Error()
}
func (e *issuerKeysUnavailable) Unwrap() error             { return resourceguard.ErrKeysUnavailable }
func (e *issuerKeysUnavailable) Temporary() bool           { return true }
func (e *issuerKeysUnavailable) RetryAfter() time.Duration { return max(e.retry, time.Second) }

// startIssuerKeys starts the key source of every trusted issuer, bounded by
// ctx (the server's life: Close stops their refreshes). Each starts from
// its persisted set when there is one, else after one fetch of at most a
// few seconds (made in parallel); an unreachable issuer does not fail.
func (s *Server) startIssuerKeys(ctx context.Context) error {
	type trusted struct{ issuer, jwks string }
	var all []trusted
	for _, p := range s.cfg.EnterpriseIdPs {
		all = append(all, trusted{p.Issuer, p.JWKSURI})
	}
	for _, w := range s.cfg.WorkloadIssuers {
		all = append(all, trusted{w.Issuer, w.JWKSURI})
	}
	if len(all) == 0 {
		return nil
	}
	srcs := make([]*resourceguard.RemoteKeySource, len(all))
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, t := range all {
		wg.Go(func() {
			srcs[i], errs[i] = resourceguard.NewRemoteKeySourceWithOptions(ctx, resourceguard.RemoteOptions{
				Issuer:                t.issuer,
				JWKSURL:               t.jwks,
				Client:                s.cfg.IssuerClient,
				Store:                 s.cfg.IssuerKeyStore,
				AllowUnavailableStart: true,
				Logger:                s.cfg.Logger,
				Now:                   s.cfg.Now,
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("authserver: trusted issuer keys: %w", err)
	}
	s.issuerKeys = make(map[string]KeySource, len(all))
	for i, t := range all {
		s.issuerKeys[t.issuer] = issuerKeys{src: srcs[i]}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); srcs[i].Run(ctx) }()
	}
	return nil
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
