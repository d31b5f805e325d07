package config

import "time"

// App is the JSON configuration of the `mcp_auth` app (caddymodule.App
// embeds it): the authorization server, its store, signing keys, clients
// and hosted login.
type App struct {
	// Issuer is the authorization server's issuer identifier, exactly as
	// published (https, or http on localhost for development). It is never
	// derived from request headers.
	Issuer string `json:"issuer"`
	// PathPrefix puts the endpoints under a prefix (default: the issuer's
	// origin root, where some clients look for them regardless of metadata).
	PathPrefix string `json:"path_prefix,omitempty"`
	// Source is where the mcp_auth block is configured (Caddyfile
	// file:line, set by the adapter), named by its configuration errors.
	Source string `json:"source,omitempty"`
	// Storage chooses the backend (default: an embedded bbolt file).
	Storage Storage `json:"storage,omitempty"`
	// SigningAlgorithm signs access tokens: ES256 (default), EdDSA or RS256.
	SigningAlgorithm string `json:"signing_algorithm,omitempty"`
	// KeyRotation rotates the signing key on this period (0: only on demand).
	KeyRotation Duration `json:"key_rotation,omitempty"`
	// KeyReload is how often the signing keys are re-read from the store,
	// so that instances sharing it converge (default 1m). Use the same
	// value on every instance.
	KeyReload Duration `json:"key_reload,omitempty"`
	// KeyPrePublish is how long a rotated-in signing key is published in
	// the JWKS before it signs, so that every instance and every cached
	// JWKS has it first. It must be longer than KeyReload; the JWKS
	// Cache-Control max-age is then at most KeyPrePublish - 2*KeyReload.
	// Default 2*KeyReload + 5m (7m).
	KeyPrePublish Duration `json:"key_prepublish,omitempty"`
	// KeyEncryptionKey encrypts the signing keys at rest (AES-256-GCM):
	// base64 of at least 32 random bytes (`openssl rand -base64 32`). Use
	// {env.*} or KeyEncryptionKeyFile rather than writing it in the config.
	// Every instance sharing the store needs the same one. Unset: keys are
	// stored unencrypted.
	KeyEncryptionKey string `json:"key_encryption_key,omitempty"`
	// KeyEncryptionKeyFile reads KeyEncryptionKey from a file (surrounding
	// whitespace ignored); exclusive with KeyEncryptionKey.
	KeyEncryptionKeyFile string `json:"key_encryption_key_file,omitempty"`
	// KeyEncryptionKeyPrevious is the key-encryption key being rotated out:
	// it only decrypts, and keys sealed with it are re-encrypted with
	// KeyEncryptionKey at start. Same format.
	KeyEncryptionKeyPrevious string `json:"key_encryption_key_previous,omitempty"`
	// KeyEncryptionKeyPreviousFile reads KeyEncryptionKeyPrevious from a
	// file; exclusive with it.
	KeyEncryptionKeyPreviousFile string `json:"key_encryption_key_previous_file,omitempty"`
	// CodeLifetime of authorization codes (default 60s, at most 10m).
	CodeLifetime Duration `json:"code_lifetime,omitempty"`
	// AccessTokenLifetime of access tokens (default 1h).
	AccessTokenLifetime Duration `json:"access_token_lifetime,omitempty"`
	// RefreshTokenLifetime is the idle life of a refresh token (default 30 days).
	RefreshTokenLifetime Duration `json:"refresh_token_lifetime,omitempty"`
	// GrantLifetime is the absolute life of a grant and its refresh tokens (default 90 days).
	GrantLifetime Duration `json:"grant_lifetime,omitempty"`
	// RefreshGrace is how long a rotated-out refresh token may still be
	// redeemed, once, by a client that lost the response carrying its
	// successor (default 60s, at most 10m). Outside that window, or on a
	// second use, presenting it is reuse and revokes the whole grant family.
	// 0 is strict rotation: the rotated-out token is reuse at once.
	RefreshGrace *Duration `json:"refresh_grace,omitempty"`
	// Scopes offered (scopes_supported); offline_access is always offered.
	Scopes []string `json:"scopes,omitempty"`
	// DefaultScopes apply when a request carries no scope and its client has none.
	DefaultScopes []string `json:"default_scopes,omitempty"`
	// Resources are the protected resources tokens may be bound to, besides
	// those that `mcp_protect` handlers of this config register.
	Resources []string `json:"resources,omitempty"`
	// DefaultResource is the audience when a request names none and its client
	// has no audience (default: the only known resource, when there is one).
	DefaultResource string `json:"default_resource,omitempty"`
	// ResourceIndicators tunes RFC 8707 resource binding.
	ResourceIndicators *ResourceIndicators `json:"resource_indicators,omitempty"`
	// CORSOrigins limits which browser origins may call the metadata, token,
	// revocation and registration endpoints (default: any origin, never with
	// credentials).
	CORSOrigins []string `json:"cors_origins,omitempty"`
	// Clients are owned clients seeded at start.
	Clients []Client `json:"clients,omitempty"`
	// Login configures the hosted login pages and local accounts.
	Login Login `json:"login,omitempty"`
	// EnterpriseIdPs are trusted enterprise IdPs whose ID-JAGs the token
	// endpoint accepts (JWT bearer grant; requirement 24).
	EnterpriseIdPs []EnterpriseIdP `json:"enterprise_idps,omitempty"`
	// WorkloadIssuers are trusted issuers of workload tokens, accepted as
	// client assertions (requirement 23).
	WorkloadIssuers []WorkloadIssuer `json:"workload_issuers,omitempty"`
	// CIMD accepts clients identified by an https URL to their Client ID
	// Metadata Document (Claude, ChatGPT, VS Code). Off when absent.
	CIMD *CIMD `json:"cimd,omitempty"`
	// DCR turns on Dynamic Client Registration (RFC 7591) for public PKCE
	// clients (Cursor, mcp-remote, older clients). Off when absent.
	DCR *DCR `json:"dcr,omitempty"`
	// DPoP accepts DPoP proofs at the token endpoint and binds tokens to
	// the client's key (RFC 9449). Off when absent.
	DPoP *DPoP `json:"dpop,omitempty"`

	// TokenRateLimit limits token and revocation requests per client IP, in
	// requests per second (default 10; negative turns the limit off) …
	TokenRateLimit float64 `json:"token_rate_limit,omitempty"`
	// … with bursts of TokenRateBurst (default 50).
	TokenRateBurst int `json:"token_rate_burst,omitempty"`
	// SharedLimits makes the registration (DCR) limits, the token
	// endpoint limit and login throttling hold across every instance on
	// the same PostgreSQL storage instead of per instance. Only valid with
	// storage postgres.
	SharedLimits bool `json:"shared_limits,omitempty"`
	// AuditRetention deletes audit events older than this (default 90 days; negative keeps them all).
	AuditRetention Duration `json:"audit_retention,omitempty"`
	// ClientIPv4Prefix is how many leading bits of a client's IPv4 address
	// identify one requester for the per-requester budgets (token and
	// registration rate limits, stored DCR clients, login throttling).
	// Default 32: each address.
	ClientIPv4Prefix int `json:"client_ipv4_prefix,omitempty"`
	// ClientIPv6Prefix is the same for IPv6 addresses. Default 64: one
	// subscriber's /64 is one requester, however many addresses it uses.
	ClientIPv6Prefix int `json:"client_ipv6_prefix,omitempty"`

	// kek and kekPrevious are the key-encryption keys as configured, with
	// placeholders replaced and files read by ResolveKEK (never logged).
	kek, kekPrevious string
}

// CIMD configures Client ID Metadata Documents.
type CIMD struct {
	// Policy is "trusted" (only TrustedHosts; the default) or "any" (any
	// https host; the consent page names the host).
	Policy string `json:"policy,omitempty"`
	// TrustedHosts are exact hosts ("claude.ai") or suffix patterns
	// ("*.example.com"). Empty: the built-in hosts of the major clients'
	// documents (claude.ai, chatgpt.com, vscode.dev; cimd.KnownClients);
	// "builtin" in the list stands for them.
	TrustedHosts []string `json:"trusted_hosts,omitempty"`
	// MaxBytes caps a document (default 5120).
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// Timeout bounds a whole fetch from a trusted host (default 10s).
	Timeout Duration `json:"timeout,omitempty"`
	// UntrustedTimeout bounds a whole fetch from a host outside
	// TrustedHosts, with policy "any" (default 3s, at most Timeout).
	UntrustedTimeout Duration `json:"untrusted_timeout,omitempty"`
	// CacheMin and CacheMax bound how long a document is cached (defaults 5m, 24h).
	CacheMin Duration `json:"cache_min,omitempty"`
	CacheMax Duration `json:"cache_max,omitempty"`
	// NegativeCache is how long a failed client id is remembered, so that
	// asking again costs no fetch (default 30s; negative: off).
	NegativeCache Duration `json:"negative_cache,omitempty"`
	// ServeStale is how long past expiry a document that resolved before is
	// still served when its refetch fails transiently (default 1h; negative: off).
	ServeStale Duration `json:"serve_stale,omitempty"`
	// HostRate is the fetch budget per document host (default 10 per 10s).
	HostRate *CIMDRate `json:"host_rate,omitempty"`
	// DomainRate is the fetch budget per registrable domain (default 20 per 10s).
	DomainRate *CIMDRate `json:"domain_rate,omitempty"`
	// RequesterRate is the fetch budget per client IP, IPv6 by /64 (default 5 per 25s).
	RequesterRate *CIMDRate `json:"requester_rate,omitempty"`
	// CABundle is a PEM file of extra CAs for documents on a private PKI.
	CABundle string `json:"ca_bundle,omitempty"`
	// InsecureAllowLoopback lets documents be fetched from loopback
	// addresses. For development and tests only: it MUST NOT be used in
	// production (it reopens SSRF to this machine). Logged loudly.
	InsecureAllowLoopback bool `json:"insecure_allow_loopback,omitempty"`
	// Clients are policies for single CIMD clients, by exact client id (the
	// metadata document URL). They take precedence over ClientHosts, knob
	// by knob.
	Clients map[string]*CIMDClientPolicy `json:"clients,omitempty"`
	// ClientHosts are policies for the CIMD clients of a host: an exact host
	// ("claude.ai") or a wildcard ("*.example.com", its subdomains). An
	// exact host takes precedence over a wildcard, a longer wildcard over a
	// shorter one, and any of them over the global settings.
	ClientHosts map[string]*CIMDClientPolicy `json:"client_hosts,omitempty"`
}

// CIMDClientPolicy is the policy of a class of CIMD clients. Unset fields
// fall through to a less specific policy, then to the global settings.
type CIMDClientPolicy struct {
	// AccessTokenLifetime of the client's access tokens, on code exchange
	// and on refresh (at most 24h). For clients that never refresh (Claude's
	// proxy): the guard checks revocation on every request.
	AccessTokenLifetime Duration `json:"access_token_lifetime,omitempty"`
	// RefreshTokenLifetime is the idle life of the client's refresh tokens
	// (the grant lifetime still ends them).
	RefreshTokenLifetime Duration `json:"refresh_token_lifetime,omitempty"`
	// Scopes the client may ask for (each among the server's scopes): a
	// request for another is refused with invalid_scope.
	Scopes []string `json:"scopes,omitempty"`
	// RememberConsent is how long the user's "remember this decision"
	// lasts for the client (default 90 days); negative (off in the
	// Caddyfile) never remembers it.
	RememberConsent Duration `json:"remember_consent,omitempty"`
	// MachineUse lets these clients use the client_credentials grant (with
	// private_key_jwt) when their document declares it.
	MachineUse bool `json:"machine_use,omitempty"`
}

// CIMDRate is a fetch budget: Burst fetches at once, refilled at Burst per
// Interval.
type CIMDRate struct {
	// Burst is how many fetches may happen at once.
	Burst int `json:"burst"`
	// Interval is the time over which Burst fetches are refilled.
	Interval Duration `json:"interval"`
}

// perSecond is the sustained rate of a budget (nil: 0, the default).
func (r *CIMDRate) perSecond() (float64, int) {
	if r == nil || r.Interval <= 0 {
		return 0, 0
	}
	return float64(r.Burst) / time.Duration(r.Interval).Seconds(), r.Burst
}

// DCR configures Dynamic Client Registration.
type DCR struct {
	// RateBurst registrations per requester (client IP, IPv6 by /64) at once (default 10) …
	RateBurst int `json:"rate_burst,omitempty"`
	// … refilled one every RateEvery (default 6m).
	RateEvery Duration `json:"rate_every,omitempty"`
	// GlobalRateBurst registrations from all requesters together at once (default 60) …
	GlobalRateBurst int `json:"global_rate_burst,omitempty"`
	// … refilled one every GlobalRateEvery (default 10s).
	GlobalRateEvery Duration `json:"global_rate_every,omitempty"`
	// MaxClientsPerPrefix caps the stored clients registered from one
	// requester (default 100); further registrations get 429 until unused
	// ones expire.
	MaxClientsPerPrefix int `json:"max_clients_per_prefix,omitempty"`
	// MaxClients caps the stored registered clients in all (default 10000).
	MaxClients int `json:"max_clients,omitempty"`
	// ExpireUnused deletes registered clients unused for this long (default 720h; 0 keeps them).
	ExpireUnused *Duration `json:"expire_unused,omitempty"`
	// PrivateSchemes allows private-use redirect schemes such as cursor:// (default on).
	PrivateSchemes *bool `json:"private_schemes,omitempty"`
}

// ResourceIndicators are the four RFC 8707 knobs. Each defaults to true.
type ResourceIndicators struct {
	// Enabled accepts and binds the `resource` parameter.
	Enabled *bool `json:"enabled,omitempty"`
	// ClientAudienceFallback uses the client's audience when a request names no resource.
	ClientAudienceFallback *bool `json:"client_audience_fallback,omitempty"`
	// EnforceOnTokenExchange requires a `resource` sent to /token to equal the authorized one.
	EnforceOnTokenExchange *bool `json:"enforce_on_token_exchange,omitempty"`
	// KeepBindingOnRefresh keeps the original resource on refresh when none is sent.
	KeepBindingOnRefresh *bool `json:"keep_binding_on_refresh,omitempty"`
}

// Client is an owned client seeded from config.
type Client struct {
	// ID is the client_id.
	ID string `json:"id"`
	// Name is shown on the login and consent pages.
	Name string `json:"name,omitempty"`
	// RedirectURIs are matched exactly (loopback http: any port). Private-use
	// schemes such as `myapp://callback` are allowed.
	RedirectURIs []string `json:"redirect_uris"`
	// Scopes limits what the client may ask for (default: every offered scope).
	Scopes []string `json:"scopes,omitempty"`
	// DefaultScopes apply when the client asks for none.
	DefaultScopes []string `json:"default_scopes,omitempty"`
	// Audience is the client-audience fallback resource.
	Audience string `json:"audience,omitempty"`
	// Secret makes the client confidential (client_secret_basic or
	// client_secret_post). Use {env.*}; it is stored hashed.
	Secret string `json:"secret,omitempty"`
	// AccessTokenLifetime overrides the server's (e.g. for clients that never refresh).
	AccessTokenLifetime Duration `json:"access_token_lifetime,omitempty"`
	// RefreshTokenLifetime overrides the server's.
	RefreshTokenLifetime Duration `json:"refresh_token_lifetime,omitempty"`
	// SkipConsent skips the consent page for this owned client.
	SkipConsent bool `json:"skip_consent,omitempty"`
	// JWKSURI makes the client a private_key_jwt client (RFC 7523 §2.2): it
	// authenticates at /token and /revoke with assertions signed by a key
	// published at this https URL, fetched under the CIMD fetcher's rules
	// (no special-use addresses, no redirects, at most 5 KiB) and cached.
	// Not with secret or jwks_file.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// JWKSFile is a file holding the client's public JWK set, read at
	// provision: a private_key_jwt client with inline keys. Not with secret
	// or jwks_uri.
	JWKSFile string `json:"jwks_file,omitempty"`
	// GrantTypes the client may use: authorization_code and refresh_token
	// (default), and client_credentials for an agent acting for itself
	// (with a secret, keys or a workload_issuer mapping; no redirect URI
	// needed when it is the only one).
	GrantTypes []string `json:"grant_types,omitempty"`
	// Source is where the client is configured (Caddyfile file:line, set
	// by the adapter), named by errors found at provision.
	Source string `json:"source,omitempty"`
}

// Login configures the hosted login.
type Login struct {
	// ProductName is shown in titles and headings (default "MCP").
	ProductName string `json:"product_name,omitempty"`
	// Logo is an image URL for the pages' header.
	Logo string `json:"logo,omitempty"`
	// AccentColor is a CSS hex colour such as #4f46e5.
	AccentColor string `json:"accent_color,omitempty"`
	// SupportURL is linked from error pages.
	SupportURL string `json:"support_url,omitempty"`
	// Templates is a directory whose files replace the embedded templates of the same name.
	Templates string `json:"templates,omitempty"`
	// Password turns password login on or off (default on).
	Password *bool `json:"password,omitempty"`
	// Signup is "off" (default), "open" or "domains".
	Signup string `json:"signup,omitempty"`
	// SignupDomains are the email domains allowed to sign up with Signup
	// "domains". They restrict how an address is spelled, not who owns it:
	// only a verification mail (SMTP) proves that.
	SignupDomains []string `json:"signup_domains,omitempty"`
	// SMTP, when set, sends signup verification links through this server:
	// a self-signup account then gets no grant until its email is verified,
	// and signing up with a taken address mails its owner instead.
	SMTP *SMTP `json:"smtp,omitempty"`
	// Users are password accounts created at start when missing.
	Users []User `json:"users,omitempty"`
	// SessionIdle ends a browser session after this much inactivity (default 8h).
	SessionIdle Duration `json:"session_idle,omitempty"`
	// SessionLifetime ends a browser session this long after sign-in (default 7 days).
	SessionLifetime Duration `json:"session_lifetime,omitempty"`
	// OIDC are upstream OpenID Connect providers (a button each).
	OIDC []OIDCProvider `json:"oidc,omitempty"`
	// SAML are upstream SAML 2.0 identity providers (a button each).
	SAML []SAMLProvider `json:"saml,omitempty"`
	// Upstreams are upstream providers of any registered kind (a button
	// each): {"kind": "<kind>", "name": "<name>", <the kind's options>}.
	Upstreams []UpstreamProvider `json:"upstreams,omitempty"`
	// HomeRealm sends users of an email domain straight to a provider
	// (domain -> provider name); the login page then asks for the email first.
	HomeRealm map[string]string `json:"home_realm,omitempty"`
}

// SMTP is the SMTP server of the hosted login's mails.
type SMTP struct {
	// Host is the SMTP server's host name (placeholders such as {env.SMTP_HOST} are replaced).
	Host string `json:"host"`
	// Port defaults to 587, or 465 with TLS "tls".
	Port int `json:"port,omitempty"`
	// TLS is "starttls" (default: the server must offer STARTTLS),
	// "tls" (implicit TLS) or "none" (plain text, loopback hosts only).
	TLS string `json:"tls,omitempty"`
	// From is the sender address, e.g. "Acme <no-reply@acme.example>".
	From string `json:"from"`
	// Username and Password authenticate with AUTH PLAIN (use {env.*}).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// User is a password account seeded from config.
type User struct {
	// Email is the sign-in name.
	Email string `json:"email"`
	// Name is the display name.
	Name string `json:"name,omitempty"`
	// Password in the clear (use {env.*}); hashed with argon2id before storage.
	Password string `json:"password,omitempty"`
	// PasswordHash is an argon2id PHC string, instead of Password.
	PasswordHash string `json:"password_hash,omitempty"`
	// Source is where the user is configured (Caddyfile file:line, set by
	// the adapter), named by errors found at provision.
	Source string `json:"source,omitempty"`
}
