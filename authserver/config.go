package authserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Store is every storage role the authorization server needs.
type Store interface {
	storage.Clients
	storage.Codes
	storage.Grants
	storage.Keys
	storage.Consents
	storage.Audit
	storage.Replays
}

// ClientResolver resolves client ids that are https URLs (Client ID Metadata
// Documents). It returns a client of Kind storage.ClientCIMD, or an error.
//
// An error with the methods Temporary() bool (true) and RetryAfter()
// time.Duration (cimd's throttled, timed-out, 5xx and network failures) is
// answered 503 temporarily_unavailable with Retry-After, at /token and on
// the /authorize error page; any other error is an unknown client.
type ClientResolver interface {
	ResolveClient(ctx context.Context, clientID string) (storage.Client, error)
}

// RequesterClientResolver is a ClientResolver that also takes the requester
// (the client IP, as ClientIP resolves it), to budget its fetches per
// requester. The server uses it when the resolver implements it.
type RequesterClientResolver interface {
	ResolveClientFrom(ctx context.Context, clientID, requester string) (storage.Client, error)
}

// Limits and defaults.
const (
	DefaultCodeTTL         = 60 * time.Second
	MaxCodeTTL             = 10 * time.Minute
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultGrantTTL        = 90 * 24 * time.Hour
	DefaultConsentTTL      = 90 * 24 * time.Hour
	DefaultRefreshGrace    = 60 * time.Second
	MaxRefreshGrace        = 10 * time.Minute
	// NoRefreshGrace (or any negative RefreshGrace) is strict rotation: a
	// rotated-out refresh token is reuse at once.
	NoRefreshGrace time.Duration = -1

	// maxFormBytes caps the body of /token, /revoke and the consent form.
	maxFormBytes = 64 << 10
)

// ScopeOfflineAccess is always offered.
const ScopeOfflineAccess = "offline_access"

// Config configures a Server.
type Config struct {
	// Issuer is the exact issuer identifier: https, or http on localhost,
	// 127.0.0.1 or [::1] for development. It is never built from request
	// headers.
	Issuer string
	// PathPrefix puts every endpoint under this path ("" = the origin's root:
	// /authorize, /token, /revoke, /register, /jwks.json).
	PathPrefix string
	// Store holds clients, codes, grants, keys, consents and the audit log.
	Store Store
	// Browser is the hosted login (who is signed in, login, consent and error
	// pages, CSRF).
	Browser Browser
	// Keys signs access tokens. When nil, New builds one from Store with
	// KeyConfig and runs its rotation loop until Close.
	Keys      *KeySet
	KeyConfig KeyConfig
	// Scopes is scopes_supported; offline_access is always added.
	Scopes []string
	// DefaultScopes apply when a request carries no scope and the client has
	// no default scopes.
	DefaultScopes []string
	// Resources is the RFC 8707 resource policy.
	Resources ResourcePolicy
	// Tools are the per-tool scope maps of resources (keyed by normalized
	// resource): the consent page lists the tools each scope unlocks, and
	// grants and tokens record the tool snapshot (see ToolMap).
	Tools map[string]ToolMap
	// Clients are owned clients seeded (upserted) at New.
	Clients []storage.Client
	// CodeTTL is the life of an authorization code (default 60s, at most 10m).
	CodeTTL time.Duration
	// AccessTokenTTL is the life of an access token (default 1h); a client's
	// AccessTokenTTL overrides it.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the idle life of a refresh token (default 30 days); a
	// client's RefreshTokenTTL overrides it.
	RefreshTokenTTL time.Duration
	// GrantTTL is the absolute life of a grant family (default 90 days).
	GrantTTL time.Duration
	// RefreshGrace is how long a rotated-out refresh token may still be
	// redeemed, once, by a client that lost the response carrying its
	// successor (requirement 37; default 60s, at most 10m). Outside the
	// window, or on a second use, it is reuse and revokes the grant family.
	// NoRefreshGrace (negative) is strict rotation.
	RefreshGrace time.Duration
	// ConsentTTL is how long a remembered consent lasts (default 90 days).
	ConsentTTL time.Duration
	// CIMDPolicy gives CIMD clients, by client id or host, their own
	// token lifetimes, allowed scopes and consent memory (requirement 34).
	CIMDPolicy CIMDPolicy
	// CORS applies to metadata, JWKS, token, revocation and registration.
	CORS CORS
	// JWKSFetcher fetches the JWK sets of private_key_jwt clients that
	// name a jwks_uri (cimd.Fetcher, under the CIMD fetch rules). Nil: such
	// clients cannot authenticate (invalid_client); inline jwks still work.
	JWKSFetcher JWKSFetcher
	// EnterpriseIdPs are the enterprise identity providers whose ID-JAGs
	// the JWT bearer grant accepts (requirement 24). Empty: the grant is
	// not served.
	EnterpriseIdPs []EnterpriseIdP
	// EnterpriseAccounts maps the user of an accepted ID-JAG to an account
	// (the subject of the token), linking or creating it per the IdP's
	// policy; ErrAccountNotProvisioned when the user may not get one.
	// Required with EnterpriseIdPs.
	EnterpriseAccounts func(ctx context.Context, id EnterpriseIdentity) (subject string, err error)
	// WorkloadIssuers are the issuers whose workload tokens authenticate
	// clients as client assertions (requirement 23).
	WorkloadIssuers []WorkloadIssuer
	// IssuerClient fetches the metadata and keys of EnterpriseIdPs and
	// WorkloadIssuers (nil: resourceguard's default client, 10 s timeout,
	// no redirect from https to http). The operator named these issuers, so
	// private addresses are allowed (a cluster's issuer is often internal).
	IssuerClient *http.Client
	// IssuerKeyStore keeps the last good key set of each trusted issuer
	// (as the guard keeps its external issuer's), so that a restart while
	// the issuer is down still verifies. Nil: kept in memory only.
	// certmagic.Storage (Caddy's storage) satisfies it.
	IssuerKeyStore resourceguard.KeySetStore
	// ClientResolver resolves https client ids (CIMD). Nil: such ids are
	// unknown clients.
	ClientResolver ClientResolver
	// Registration serves /register (DCR) when non-nil.
	Registration http.Handler
	// OnEvent is called for every audit event (metrics); events are written
	// to Store anyway.
	OnEvent func(storage.AuditEvent)
	// Refusals aggregates the audit records of refused /authorize and
	// /token requests (one record per reason, client, source prefix and
	// minute). When nil the server runs its own, flushed on Close.
	Refusals *abuse.Aggregator
	// Audit writes the audit events that need not be in the transaction of
	// a state change (batched, retried, bounded; see internal/audit). When
	// nil the server runs its own, flushed on Close.
	Audit *audit.Writer
	// TokenRatePerIP and TokenBurstPerIP limit token and revocation requests
	// per client IP (0: no limit). Refused requests get 429 with
	// temporarily_unavailable and a Retry-After.
	TokenRatePerIP  float64
	TokenBurstPerIP int
	// SharedLimits, when set, makes TokenRatePerIP hold across the
	// instances sharing it (abuse.LimiterConfig.Shared); nil: per instance.
	SharedLimits abuse.SharedBuckets
	// IPv4Prefix and IPv6Prefix are the bits of a client IP that identify a
	// requester for TokenRatePerIP (defaults 32 and 64).
	IPv4Prefix int
	IPv6Prefix int
	// UserEmail, when set, returns the email of a subject and whether it
	// is verified, for the access token's "email" and "email_verified"
	// claims (the guard hands the email upstream). Only a verified email is
	// asserted (requirement 36); "" or unverified leaves both claims out.
	// It is called once per token issued.
	UserEmail func(ctx context.Context, subject string) (email string, verified bool)
	// ClientIP returns the client's IP as resolved by the proxy in front
	// (Caddy's client_ip). Nil: the request's RemoteAddr.
	ClientIP func(*http.Request) string
	// EndSessionEndpoint is advertised in the metadata when set (served by
	// the hosted login).
	EndSessionEndpoint string
	// ServiceDocumentation is advertised in the metadata when set.
	ServiceDocumentation string
	// DPoP, when set, accepts DPoP proofs at /token and binds the tokens
	// (RFC 9449; see DPoPConfig).
	DPoP   *DPoPConfig
	Now    func() time.Time
	Logger *slog.Logger
}

// withDefaults validates cfg and fills in defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Store == nil {
		return cfg, errors.New("authserver: config: store is required")
	}
	if cfg.Browser == nil {
		return cfg, errors.New("authserver: config: browser is required")
	}
	if err := ValidateIssuer(cfg.Issuer); err != nil {
		return cfg, err
	}
	if p := cfg.PathPrefix; p != "" {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#\\ ") || strings.Contains(p, "//") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
			return cfg, fmt.Errorf("authserver: config: invalid path prefix %q", p)
		}
		cfg.PathPrefix = strings.TrimSuffix(p, "/")
	}
	switch {
	case cfg.CodeTTL == 0:
		cfg.CodeTTL = DefaultCodeTTL
	case cfg.CodeTTL < 0 || cfg.CodeTTL > MaxCodeTTL:
		return cfg, fmt.Errorf("authserver: config: code ttl %s out of range (0, %s]", cfg.CodeTTL, MaxCodeTTL)
	}
	if cfg.AccessTokenTTL < 0 || cfg.RefreshTokenTTL < 0 || cfg.GrantTTL < 0 || cfg.ConsentTTL < 0 {
		return cfg, errors.New("authserver: config: negative lifetime")
	}
	if cfg.AccessTokenTTL == 0 {
		cfg.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if cfg.RefreshTokenTTL == 0 {
		cfg.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if cfg.GrantTTL == 0 {
		cfg.GrantTTL = DefaultGrantTTL
	}
	if cfg.ConsentTTL == 0 {
		cfg.ConsentTTL = DefaultConsentTTL
	}
	switch {
	case cfg.RefreshGrace == 0:
		cfg.RefreshGrace = DefaultRefreshGrace
	case cfg.RefreshGrace < 0:
		cfg.RefreshGrace = NoRefreshGrace
	case cfg.RefreshGrace > MaxRefreshGrace:
		return cfg, fmt.Errorf("authserver: config: refresh grace %s is longer than %s", cfg.RefreshGrace, MaxRefreshGrace)
	}
	for _, sc := range append(append([]string{}, cfg.Scopes...), cfg.DefaultScopes...) {
		if !validScopeToken(sc) {
			return cfg, fmt.Errorf("authserver: config: invalid scope %q", sc)
		}
	}
	if !contains(cfg.Scopes, ScopeOfflineAccess) {
		cfg.Scopes = append(append([]string{}, cfg.Scopes...), ScopeOfflineAccess)
	}
	for _, sc := range cfg.DefaultScopes {
		if !contains(cfg.Scopes, sc) {
			return cfg, fmt.Errorf("authserver: config: default scope %q is not in scopes", sc)
		}
	}
	if err := cfg.CIMDPolicy.Validate(cfg.Scopes); err != nil {
		return cfg, err
	}
	cfg.WorkloadIssuers = append([]WorkloadIssuer(nil), cfg.WorkloadIssuers...)
	if err := validateWorkloadIssuers(cfg.WorkloadIssuers, cfg.Issuer); err != nil {
		return cfg, err
	}
	cfg.EnterpriseIdPs = append([]EnterpriseIdP(nil), cfg.EnterpriseIdPs...)
	if err := validateEnterpriseIdPs(cfg.EnterpriseIdPs, cfg); err != nil {
		return cfg, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// ValidateIssuer enforces RFC 8414 §2: https, no query, no fragment; http
// only on loopback hosts (development).
func ValidateIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || issuer == "" {
		return fmt.Errorf("authserver: config: invalid issuer %q", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.Contains(issuer, "#") || strings.Contains(issuer, "?") || u.User != nil || u.Host == "" {
		return fmt.Errorf("authserver: config: issuer %q must be an absolute URL with no query, fragment or userinfo", issuer)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); !(h == "localhost" || (ip != nil && ip.IsLoopback())) {
			return fmt.Errorf("authserver: config: issuer %q must be https (http only on loopback)", issuer)
		}
	default:
		return fmt.Errorf("authserver: config: issuer %q must be https", issuer)
	}
	if strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("authserver: config: issuer %q must not end with /", issuer)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// validScopeToken: RFC 6749 §3.3 scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
