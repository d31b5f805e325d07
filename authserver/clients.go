package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/idp/password"
	"github.com/mcpauth/caddy-mcpauth/internal/jwsalg"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// errClientUnknown is returned by lookupClient for ids no one knows.
var errClientUnknown = errors.New("authserver: unknown client")

// temporaryError is a resolver error that may pass (a CIMD fetch that was
// throttled, timed out or met a 5xx or network error): the client is not
// unknown, only unavailable now.
type temporaryError interface {
	Temporary() bool
	RetryAfter() time.Duration
}

// clientUnavailableError wraps a temporary resolver failure in lookupClient.
type clientUnavailableError struct {
	retryAfter time.Duration
	cause      error
}

func (e *clientUnavailableError) Error() string {
	return "authserver: client unavailable: " + e.cause.Error()
}
func (e *clientUnavailableError) Unwrap() error { return e.cause }

// clientUnavailable maps a temporary lookup failure to 503
// temporarily_unavailable with Retry-After: never invalid_client, which
// clients read as "forget your credentials".
func clientUnavailable(err error) (*oauth.Error, bool) {
	var u *clientUnavailableError
	if !errors.As(err, &u) {
		return nil, false
	}
	reason, detail := cimdRefusal(u.cause)
	if reason == oauth.ReasonClientUnknown {
		reason = oauth.ReasonCIMDFetchFailed
	}
	e := oauth.ErrTemporarilyUnavailable("").Plain(reason, detail)
	e.RetryAfter = max(u.retryAfter, time.Second)
	return e, true
}

type requesterKey struct{}

// requesterContext carries the client IP to lookupClient, for resolvers
// that budget their work per requester.
func (s *Server) requesterContext(r *http.Request) context.Context {
	return context.WithValue(r.Context(), requesterKey{}, s.clientIP(r))
}

// lookupClient finds a client: https ids through the ClientResolver (CIMD),
// others in the store (owned and DCR clients). Unknown ids wrap
// errClientUnknown; a temporary resolver failure is an
// *clientUnavailableError; other errors are store failures.
func (s *Server) lookupClient(ctx context.Context, id string) (storage.Client, error) {
	if id == "" || len(id) > 2048 {
		return storage.Client{}, errClientUnknown
	}
	if oauth.IsCIMDClientID(id) {
		if s.cfg.ClientResolver == nil {
			return storage.Client{}, errClientUnknown
		}
		var c storage.Client
		var err error
		if rr, ok := s.cfg.ClientResolver.(RequesterClientResolver); ok {
			requester, _ := ctx.Value(requesterKey{}).(string)
			c, err = rr.ResolveClientFrom(ctx, id, requester)
		} else {
			c, err = s.cfg.ClientResolver.ResolveClient(ctx, id)
		}
		if err != nil {
			var te temporaryError
			if errors.As(err, &te) && te.Temporary() {
				return storage.Client{}, &clientUnavailableError{retryAfter: te.RetryAfter(), cause: err}
			}
			reason, detail := cimdRefusal(err)
			return storage.Client{}, &clientRefusal{reason: reason, detail: detail, cause: err}
		}
		if c.ID != id {
			return storage.Client{}, fmt.Errorf("%w: resolver returned another client id", errClientUnknown)
		}
		if c.Kind == "" {
			c.Kind = storage.ClientCIMD
		}
		// The operator's decision about a CIMD client (disable) lives in the
		// store, not in the client's own document.
		stored, err := s.store.GetClient(ctx, id)
		switch {
		case err == nil:
			c.Disabled = stored.Disabled
		case !errors.Is(err, storage.ErrNotFound):
			return storage.Client{}, fmt.Errorf("authserver: get client: %w", err)
		}
		s.applyCIMDPolicy(&c)
		return c, nil
	}
	c, err := s.store.GetClient(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Client{}, errClientUnknown
	}
	if err != nil {
		return storage.Client{}, fmt.Errorf("authserver: get client: %w", err)
	}
	return c, nil
}

// thirdParty reports whether the client was not configured by the operator
// (CIMD, DCR): those always see consent and never get redirected errors
// before sign-in.
func thirdParty(c storage.Client) bool { return c.Kind != storage.ClientOwned }

// allowsGrant reports whether the client may use a grant type (an empty list
// means both grants served).
func allowsGrant(c storage.Client, gt string) bool {
	if len(c.GrantTypes) == 0 {
		return gt == oauth.GrantAuthorizationCode || gt == oauth.GrantRefreshToken
	}
	return contains(c.GrantTypes, gt)
}

func confidential(c storage.Client) bool {
	return c.TokenEndpointAuthMethod == oauth.AuthMethodClientSecretBasic || c.TokenEndpointAuthMethod == oauth.AuthMethodClientSecretPost
}

// authenticateClient authenticates the client of a /token or /revoke request
// (RFC 6749 §2.3, OAuth 2.1 §2.4). Public clients send client_id only;
// confidential owned clients use HTTP Basic or client_secret in the body,
// never both; private_key_jwt clients (CIMD or owned) send a signed
// client_assertion (RFC 7523 §2.2), client_id being optional. The client's
// registered method decides: another method, or none, is refused. Every
// failure is invalid_client (401) except a store failure or a key set that
// cannot be fetched right now (503).
func (s *Server) authenticateClient(r *http.Request, form url.Values) (storage.Client, *oauth.Error) {
	c, _, e := s.authenticateClientMethod(r, form)
	return c, e
}

// authenticateClientMethod is authenticateClient that also says how the
// client authenticated (an oauth.AuthMethod*; private_key_jwt for a workload
// token).
func (s *Server) authenticateClientMethod(r *http.Request, form url.Values) (storage.Client, string, *oauth.Error) {
	c, method, e := s.authenticateClientInner(r, form)
	if e == nil && method != oauth.AuthMethodPrivateKeyJWT && s.workloadBound(c.ID) {
		// A workload's client has no other credential.
		return storage.Client{}, "", oauth.ErrInvalidClient("this client authenticates with a workload token only").Because(oauth.ReasonAuthMethodRefused)
	}
	return c, method, e
}

func (s *Server) authenticateClientInner(r *http.Request, form url.Values) (storage.Client, string, *oauth.Error) {
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	assertionType, assertion := form.Get("client_assertion_type"), form.Get("client_assertion")
	basicID, basicSecret, basic, bad := basicCredentials(r)
	if bad {
		return storage.Client{}, "", oauth.ErrInvalidClient("malformed basic credentials").Because(oauth.ReasonClientAuthFailed)
	}
	var id, secret, method string
	switch {
	case (assertionType != "" || assertion != "") && (basic || formSecret != ""):
		return storage.Client{}, "", oauth.ErrInvalidRequest("more than one client authentication method")
	case assertionType != "" || assertion != "":
		if assertionType != ClientAssertionType {
			return storage.Client{}, "", oauth.ErrInvalidClient("unsupported client_assertion_type")
		}
		if assertion == "" {
			return storage.Client{}, "", oauth.ErrInvalidClient("client_assertion is required")
		}
		// The client is the assertion's issuer (RFC 7523 §3: iss = sub =
		// client_id); it is read unverified here only to find the keys.
		_, claims, err := ParseAssertion(assertion)
		if err != nil {
			return storage.Client{}, "", oauth.ErrInvalidClient("invalid client assertion")
		}
		iss, _ := stringClaim(claims, "iss")
		if w, keys := s.workloadIssuer(iss); w != nil {
			c, e := s.authenticateWorkload(r, w, keys, assertion, formID)
			return c, oauth.AuthMethodPrivateKeyJWT, e
		}
		if formID != "" && formID != iss {
			return storage.Client{}, "", oauth.ErrInvalidClient("client_id does not match the client assertion")
		}
		id, method = iss, oauth.AuthMethodPrivateKeyJWT
	case basic && formSecret != "":
		return storage.Client{}, "", oauth.ErrInvalidRequest("more than one client authentication method").Because(oauth.ReasonAuthMethodRefused)
	case basic:
		if formID != "" && formID != basicID {
			return storage.Client{}, "", oauth.ErrInvalidRequest("client_id does not match the authenticated client")
		}
		id, secret, method = basicID, basicSecret, oauth.AuthMethodClientSecretBasic
	case formSecret != "":
		id, secret, method = formID, formSecret, oauth.AuthMethodClientSecretPost
	default:
		id, method = formID, oauth.AuthMethodNone
	}
	if id == "" {
		return storage.Client{}, "", oauth.ErrInvalidClient("client authentication required").Because(oauth.ReasonClientIDMissing)
	}
	c, err := s.lookupClient(s.requesterContext(r), id)
	if err != nil {
		if e, ok := clientUnavailable(err); ok {
			return storage.Client{}, "", e
		}
		if errors.Is(err, errClientUnknown) {
			return storage.Client{}, "", clientLookupError(err)
		}
		s.cfg.Logger.Error("authserver: client lookup", "error", err)
		return storage.Client{}, "", oauth.ErrTemporarilyUnavailable("storage unavailable").Because(oauth.ReasonStorageUnavailable)
	}
	if c.Disabled {
		return storage.Client{}, "", oauth.ErrInvalidClient("").Plain(oauth.ReasonClientDisabled, "")
	}
	if c.TokenEndpointAuthMethod == oauth.AuthMethodPrivateKeyJWT {
		if method != oauth.AuthMethodPrivateKeyJWT {
			// No silent downgrade to none (requirement 22).
			return storage.Client{}, "", oauth.ErrInvalidClient("the client must authenticate with private_key_jwt")
		}
		if e := s.verifyClientAssertion(r, c, assertion); e != nil {
			return storage.Client{}, "", e
		}
		return c, method, nil
	}
	if method == oauth.AuthMethodPrivateKeyJWT {
		// A client without registered keys has nothing to verify it with.
		return storage.Client{}, "", oauth.ErrInvalidClient("client authentication failed")
	}
	if confidential(c) {
		// Either secret method is accepted for a confidential client.
		if method == oauth.AuthMethodNone || c.Kind != storage.ClientOwned {
			return storage.Client{}, "", oauth.ErrInvalidClient("").Plain(oauth.ReasonAuthMethodRefused, "")
		}
		// argon2id costs 19 MiB per verification: bound how many run at
		// once so a flood of guesses cannot exhaust memory.
		select {
		case s.secretSem <- struct{}{}:
		case <-r.Context().Done():
			return storage.Client{}, "", oauth.ErrTemporarilyUnavailable("server busy").Because(oauth.ReasonServerBusy)
		}
		ok := verifyClientSecret(c.SecretHash, secret)
		<-s.secretSem
		if !ok {
			return storage.Client{}, "", oauth.ErrInvalidClient("client authentication failed").Because(oauth.ReasonClientAuthFailed)
		}
		return c, method, nil
	}
	if method != oauth.AuthMethodNone {
		// A public client has no secret: a presented one is not trusted.
		return storage.Client{}, "", oauth.ErrInvalidClient("").Plain(oauth.ReasonAuthMethodRefused, "")
	}
	return c, method, nil
}

// verifyClientAssertion checks a private_key_jwt client assertion (RFC 7523
// §3) with the client's keys: iss = sub = client_id, aud the issuer or the
// token endpoint URL, exp at most 5 minutes ahead, jti single use (in the
// store), the client's signing alg when it declared one.
func (s *Server) verifyClientAssertion(r *http.Request, c storage.Client, assertion string) *oauth.Error {
	var keys KeySource
	switch {
	case len(c.JWKS) > 0:
		set, err := ParseJWKS(c.JWKS)
		if err != nil {
			// Logged and audited once by the refusal path (reason).
			return oauth.ErrInvalidClient("the client's keys are not usable: " + err.Error()).Because(oauth.ReasonClientKeysUnusable)
		}
		keys = StaticKeys(set)
	case c.JWKSURI != "" && s.remoteKeys != nil:
		keys = s.remoteKeys.Source(c.JWKSURI, s.clientIP(r))
	default:
		return oauth.ErrInvalidClient("the client's keys are not available").Because(oauth.ReasonClientKeysUnavailable)
	}
	var algs []string
	if c.TokenEndpointAuthSigningAlg != "" {
		algs = []string{c.TokenEndpointAuthSigningAlg}
	}
	_, err := VerifyAssertion(r.Context(), assertion, AssertionPolicy{
		Issuer:    c.ID,
		Subject:   c.ID,
		Audiences: []string{s.cfg.Issuer, s.endpoint(pathToken)},
		Algs:      algs,
		Keys:      keys,
		Replays:   s.store,
		Now:       s.cfg.Now,
	})
	if err == nil {
		return nil
	}
	var ae *AssertionError
	if errors.As(err, &ae) {
		// Logged once and audited aggregated by the refusal path: the
		// sender is not authenticated (requirement 40).
		return oauth.ErrInvalidClient("invalid client assertion: " + ae.Reason).Because(oauth.ReasonClientAssertion)
	}
	var te temporaryError
	if errors.As(err, &te) && te.Temporary() {
		s.cfg.Logger.Warn("authserver: client keys unavailable", "client_id", c.ID, "error", err)
		e := oauth.ErrTemporarilyUnavailable("the client's keys cannot be fetched right now; try again later").Because(oauth.ReasonClientKeysUnavailable)
		e.RetryAfter = max(te.RetryAfter(), time.Second)
		return e
	}
	var je *jwksError
	if errors.As(err, &je) {
		return oauth.ErrInvalidClient("the client's keys are not usable: " + je.reason).Because(oauth.ReasonClientKeysUnusable)
	}
	return s.storageError("client assertion", err)
}

// basicCredentials decodes an HTTP Basic Authorization header whose parts are
// form-urlencoded (RFC 6749 §2.3.1). bad is set for a Basic header that does
// not decode.
func basicCredentials(r *http.Request) (id, secret string, ok, bad bool) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return "", "", false, false
	}
	if len(h) > 1 || !usedBasicAuth(r) {
		// Several headers, or a scheme we do not serve for clients.
		return "", "", false, true
	}
	rawID, rawSecret, ok2 := r.BasicAuth()
	if !ok2 {
		return "", "", false, true
	}
	var err1, err2 error
	id, err1 = url.QueryUnescape(rawID)
	secret, err2 = url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil || id == "" {
		return "", "", false, true
	}
	return id, secret, true, false
}

// maxSecretVerifications bounds concurrent client secret verifications
// (argon2id at idp/password's cost, 19 MiB each).
const maxSecretVerifications = 4

// HashClientSecret hashes a client secret as an argon2id PHC string with the
// one password hasher (package idp/password, the same as account passwords):
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>", the format
// storage.Client.SecretHash holds.
func HashClientSecret(secret string) (string, error) {
	if len(secret) < 16 {
		return "", errors.New("authserver: client secret too short (at least 16 characters)")
	}
	h, err := password.Hash(secret)
	if err != nil {
		return "", fmt.Errorf("authserver: %w", err)
	}
	return h, nil
}

// verifyClientSecret compares secret with an argon2id PHC hash in constant
// time (password.Verify).
func verifyClientSecret(phc, secret string) bool {
	if secret == "" || len(secret) > 1024 {
		return false
	}
	ok, _, err := password.Verify(phc, secret)
	return err == nil && ok
}

// validateClientKeys checks the keys of an owned private_key_jwt client:
// exactly one of an https jwks_uri (fetchable only with a JWKSFetcher) and
// an inline set of public signing keys; a signing alg among AssertionAlgs.
func (s *Server) validateClientKeys(c *storage.Client) error {
	switch {
	case c.JWKSURI != "" && len(c.JWKS) > 0:
		return fmt.Errorf("authserver: client %q: jwks and jwks_uri are exclusive", c.ID)
	case c.JWKSURI != "":
		u, err := url.Parse(c.JWKSURI)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
			return fmt.Errorf("authserver: client %q: jwks_uri must be an https URL", c.ID)
		}
		if s.cfg.JWKSFetcher == nil {
			return fmt.Errorf("authserver: client %q: jwks_uri needs a JWK set fetcher", c.ID)
		}
	case len(c.JWKS) > 0:
		if _, err := ParseJWKS(c.JWKS); err != nil {
			return fmt.Errorf("authserver: client %q: %w", c.ID, err)
		}
	default:
		return fmt.Errorf("authserver: client %q: private_key_jwt needs jwks or jwks_uri", c.ID)
	}
	if a := c.TokenEndpointAuthSigningAlg; a != "" && !jwsalg.Allowed(a) {
		return fmt.Errorf("authserver: client %q: token_endpoint_auth_signing_alg %q is not supported", c.ID, a)
	}
	return nil
}

// seedClients validates and upserts the owned clients of the config.
func (s *Server) seedClients(ctx context.Context, clients []storage.Client) error {
	seen := map[string]bool{}
	for _, c := range clients {
		if err := s.validateOwnedClient(&c); err != nil {
			return err
		}
		if seen[c.ID] {
			return fmt.Errorf("authserver: client %q configured twice", c.ID)
		}
		seen[c.ID] = true
		now := s.cfg.Now()
		old, err := s.store.GetClient(ctx, c.ID)
		switch {
		case err == nil:
			if old.Kind != storage.ClientOwned {
				return fmt.Errorf("authserver: client %q already exists as a %s client", c.ID, old.Kind)
			}
			c.CreatedAt, c.LastUsedAt = old.CreatedAt, old.LastUsedAt
			c.Disabled = c.Disabled || old.Disabled // an operator's disable survives a restart
		case errors.Is(err, storage.ErrNotFound):
			c.CreatedAt = now
		default:
			return fmt.Errorf("authserver: seed client %q: %w", c.ID, err)
		}
		c.UpdatedAt = now
		if err := s.store.PutClient(ctx, c); err != nil {
			return fmt.Errorf("authserver: seed client %q: %w", c.ID, err)
		}
	}
	return nil
}

// validateOwnedClient checks and normalizes a configured client.
func (s *Server) validateOwnedClient(c *storage.Client) error {
	if c.ID == "" || len(c.ID) > 255 || oauth.IsCIMDClientID(c.ID) || strings.HasPrefix(c.ID, "http://") || strings.ContainsAny(c.ID, " \t\r\n") {
		return fmt.Errorf("authserver: invalid client id %q (non-empty, no spaces, not a URL)", c.ID)
	}
	c.Kind = storage.ClientOwned
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
	}
	for _, g := range c.GrantTypes {
		if g != oauth.GrantAuthorizationCode && g != oauth.GrantRefreshToken && g != oauth.GrantClientCredentials {
			return fmt.Errorf("authserver: client %q: unsupported grant type %q", c.ID, g)
		}
	}
	if len(c.RedirectURIs) == 0 && contains(c.GrantTypes, oauth.GrantAuthorizationCode) {
		return fmt.Errorf("authserver: client %q: at least one redirect URI is required", c.ID)
	}
	for _, u := range c.RedirectURIs {
		if _, err := oauth.CheckRedirectURI(u, oauth.OwnedRedirects); err != nil {
			return fmt.Errorf("authserver: client %q: redirect URI %q: %w", c.ID, u, err)
		}
	}
	for _, sc := range append(append([]string{}, c.Scopes...), c.DefaultScopes...) {
		if !contains(s.cfg.Scopes, sc) {
			return fmt.Errorf("authserver: client %q: scope %q is not offered by the server", c.ID, sc)
		}
	}
	if len(c.Scopes) > 0 {
		for _, sc := range c.DefaultScopes {
			if !contains(c.Scopes, sc) {
				return fmt.Errorf("authserver: client %q: default scope %q is not among its scopes", c.ID, sc)
			}
		}
	}
	if c.DefaultAudience != "" {
		n, err := NormalizeResource(c.DefaultAudience)
		if err != nil {
			return fmt.Errorf("authserver: client %q: default audience: %w", c.ID, err)
		}
		c.DefaultAudience = n
	}
	if c.AccessTokenTTL < 0 || c.RefreshTokenTTL < 0 {
		return fmt.Errorf("authserver: client %q: negative token lifetime", c.ID)
	}
	hasKeys := c.JWKSURI != "" || len(c.JWKS) > 0
	switch c.TokenEndpointAuthMethod {
	case "":
		switch {
		case c.SecretHash != "" && hasKeys:
			return fmt.Errorf("authserver: client %q: a client has a secret or keys (jwks, jwks_uri), not both", c.ID)
		case c.SecretHash != "":
			c.TokenEndpointAuthMethod = oauth.AuthMethodClientSecretBasic
		case hasKeys:
			c.TokenEndpointAuthMethod = oauth.AuthMethodPrivateKeyJWT
		default:
			c.TokenEndpointAuthMethod = oauth.AuthMethodNone
		}
	case oauth.AuthMethodNone, oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost, oauth.AuthMethodPrivateKeyJWT:
	default:
		return fmt.Errorf("authserver: client %q: unsupported token endpoint auth method %q", c.ID, c.TokenEndpointAuthMethod)
	}
	if confidential(*c) {
		if err := password.CheckHash(c.SecretHash); err != nil {
			return fmt.Errorf("authserver: client %q: secret hash: %w", c.ID, err)
		}
	} else if c.SecretHash != "" {
		return fmt.Errorf("authserver: client %q: only a client_secret client has a secret", c.ID)
	}
	if c.TokenEndpointAuthMethod == oauth.AuthMethodPrivateKeyJWT {
		if err := s.validateClientKeys(c); err != nil {
			return err
		}
	} else if hasKeys || c.TokenEndpointAuthSigningAlg != "" {
		return fmt.Errorf("authserver: client %q: keys (jwks, jwks_uri) belong to private_key_jwt clients only", c.ID)
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	c.Fingerprint = oauth.Fingerprint(*c)
	return nil
}

// checkTrustedClients checks the clients named by trusted issuers: a
// workload's client is an owned client with neither secret nor keys that
// uses client_credentials only; an enterprise IdP's owned clients exist.
func (s *Server) checkTrustedClients() error {
	owned := map[string]storage.Client{}
	for _, c := range s.cfg.Clients {
		owned[c.ID] = c
	}
	for _, w := range s.cfg.WorkloadIssuers {
		for sub, id := range w.Clients {
			c, ok := owned[id]
			switch {
			case !ok:
				return fmt.Errorf("authserver: config: workload issuer %q: subject %q maps to %q, which is not a configured client", w.Name, sub, id)
			case c.SecretHash != "" || c.JWKSURI != "" || len(c.JWKS) > 0:
				return fmt.Errorf("authserver: config: workload issuer %q: client %q has a secret or keys; a workload's client has neither", w.Name, id)
			case len(c.GrantTypes) != 1 || c.GrantTypes[0] != oauth.GrantClientCredentials:
				return fmt.Errorf("authserver: config: workload issuer %q: client %q must use grant_types client_credentials only", w.Name, id)
			}
		}
	}
	for _, p := range s.cfg.EnterpriseIdPs {
		for _, id := range p.Clients {
			if _, ok := owned[id]; !ok && !oauth.IsCIMDClientID(id) {
				return fmt.Errorf("authserver: config: enterprise idp %q: client %q is not a configured client", p.Name, id)
			}
			if s.workloadBound(id) {
				return fmt.Errorf("authserver: config: enterprise idp %q: client %q is a workload's client", p.Name, id)
			}
		}
	}
	return nil
}

// servesClientCredentials reports whether some client may use the
// client_credentials grant.
func (s *Server) servesClientCredentials() bool {
	for _, c := range s.cfg.Clients {
		if contains(c.GrantTypes, oauth.GrantClientCredentials) {
			return true
		}
	}
	for _, p := range s.cfg.CIMDPolicy.Hosts {
		if p.MachineUse {
			return true
		}
	}
	for _, p := range s.cfg.CIMDPolicy.Clients {
		if p.MachineUse {
			return true
		}
	}
	return false
}

// servesIDJAG reports whether client may present ID-JAGs (some IdP names it).
func (s *Server) servesIDJAG(client storage.Client) bool {
	for _, p := range s.cfg.EnterpriseIdPs {
		if contains(p.Clients, client.ID) {
			return true
		}
	}
	return false
}
