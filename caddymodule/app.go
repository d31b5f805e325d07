package caddymodule

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/authserver/dcr"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/mailer"
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `mcp_auth` app: it owns the store, the signing keys, the OAuth
// 2.1 authorization server and the hosted login. Sites serve it with the
// `mcp_auth_server` handler and protect MCP endpoints with `mcp_protect`.
//
// Caddyfile (global option):
//
//	{
//		mcp_auth {
//			issuer <url>
//			storage bbolt [<path>] | postgres <dsn>
//			signing_algorithm ES256|EdDSA|RS256
//			key_rotation <duration>
//			key_reload <duration>         # re-read the keys (default 1m)
//			key_prepublish <duration>     # new key published before it signs
//			key_encryption_key <base64 of 32 random bytes, e.g. {env.MCPAUTH_KEK}>
//			key_encryption_key_file <path>
//			key_encryption_key_previous <old key>     # during KEK rotation
//			key_encryption_key_previous_file <path>
//			code_lifetime <duration>
//			access_token_lifetime <duration>
//			refresh_token_lifetime <duration>
//			grant_lifetime <duration>
//			refresh_grace <duration>      # 0: strict rotation
//			scopes <scope...>
//			default_scopes <scope...>
//			resource <url>                # a known resource (repeatable)
//			default_resource <url>
//			resource_indicators {
//				enabled <bool>
//				client_audience_fallback <bool>
//				enforce_on_token_exchange <bool>
//				keep_binding_on_refresh <bool>
//			}
//			cors_origins <origin...>
//			audit_retention <duration>
//			token_rate_limit <per second>|off [<burst>]
//			cimd {
//				policy trusted|any
//				trusted_hosts <host...>      # default: builtin (claude.ai chatgpt.com vscode.dev)
//				max_bytes <n>
//				timeout <duration>
//				untrusted_timeout <duration>
//				cache_min <duration>
//				cache_max <duration>
//				negative_cache <duration>|off
//				serve_stale <duration>|off
//				host_rate <n>/<duration>
//				domain_rate <n>/<duration>
//				requester_rate <n>/<duration>
//				ca_bundle <pem file>
//				insecure_allow_loopback
//				client <client id url> {      # policy for one client (repeatable)
//					access_token_lifetime <duration>   # at most 24h
//					refresh_token_lifetime <duration>
//					scopes <scope...>
//					remember_consent <duration>|off
//				}
//				client_host <host>|*.<domain> { … }   # same options, by host
//			}
//			client_ipv4_prefix <bits>       # requester key of budgets (default 32)
//			client_ipv6_prefix <bits>       # (default 64)
//			dpop {                          # DPoP-bound tokens (RFC 9449)
//				algorithms <alg...>
//				nonce
//			}
//			dcr {
//				rate_limit <burst> <interval>
//				global_rate_limit <burst> <interval>
//				max_clients_per_prefix <n>
//				max_clients <n>
//				expire_unused <duration>
//				private_schemes on|off
//			}
//			client <id> {
//				name <text>
//				redirect_uri <uri>        # repeatable
//				scopes <scope...>
//				default_scopes <scope...>
//				audience <url>
//				secret <secret>           # makes it a confidential client
//				jwks_uri <https url>      # or: private_key_jwt with keys fetched from here
//				jwks_file <path>          # or: private_key_jwt with these public keys
//				access_token_lifetime <duration>
//				refresh_token_lifetime <duration>
//				skip_consent
//			}
//			login {
//				product_name <text>
//				logo <url>
//				accent_color <#hex>
//				support_url <url>
//				templates <dir>
//				password on|off
//				signup off|open|domains <domain...>
//				user <email> <password> [<name>]
//				session_idle <duration>
//				session_lifetime <duration>
//				smtp {
//					host <host>
//					port <port>
//					tls starttls|tls|none
//					from <address>
//					username <user>
//					password <password>
//				}
//				oidc <name> {
//					issuer <url>
//					client_id <id>
//					client_secret <secret>
//					scopes <scope...>
//					display_name <text>
//					icon_url <url>
//					claim_subject|claim_email|claim_email_verified|claim_name|claim_groups <claim>
//					userinfo
//					allow_email_domains|allow_groups|allow_subjects <value...>
//					link_by_email
//					no_account_creation
//				}
//				saml <name> {
//					idp_metadata_url <url> | idp_metadata_file <path>
//					entity_id <id>
//					sp_cert_file <pem>
//					sp_key_file <pem>
//					binding redirect|post
//					metadata_validity <duration>
//					display_name <text>
//					icon_url <url>
//					attr_subject|attr_email|attr_name|attr_groups <attribute>
//					trust_email
//					accept_response_signature
//					allow_email_domains|allow_groups|allow_subjects <value...>
//					link_by_email
//					no_account_creation
//				}
//				home_realm <email domain> <provider>
//			}
//		}
//	}
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
	Storage StorageConfig `json:"storage,omitempty"`
	// SigningAlgorithm signs access tokens: ES256 (default), EdDSA or RS256.
	SigningAlgorithm string `json:"signing_algorithm,omitempty"`
	// KeyRotation rotates the signing key on this period (0: only on demand).
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`
	// KeyReload is how often the signing keys are re-read from the store,
	// so that instances sharing it converge (default 1m). Use the same
	// value on every instance.
	KeyReload caddy.Duration `json:"key_reload,omitempty"`
	// KeyPrePublish is how long a rotated-in signing key is published in
	// the JWKS before it signs, so that every instance and every cached
	// JWKS has it first. It must be longer than KeyReload; the JWKS
	// Cache-Control max-age is then at most KeyPrePublish - 2*KeyReload.
	// Default 2*KeyReload + 5m (7m).
	KeyPrePublish caddy.Duration `json:"key_prepublish,omitempty"`
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
	CodeLifetime caddy.Duration `json:"code_lifetime,omitempty"`
	// AccessTokenLifetime of access tokens (default 1h).
	AccessTokenLifetime caddy.Duration `json:"access_token_lifetime,omitempty"`
	// RefreshTokenLifetime is the idle life of a refresh token (default 30 days).
	RefreshTokenLifetime caddy.Duration `json:"refresh_token_lifetime,omitempty"`
	// GrantLifetime is the absolute life of a grant and its refresh tokens (default 90 days).
	GrantLifetime caddy.Duration `json:"grant_lifetime,omitempty"`
	// RefreshGrace is how long a rotated-out refresh token may still be
	// redeemed, once, by a client that lost the response carrying its
	// successor (default 60s, at most 10m). Outside that window, or on a
	// second use, presenting it is reuse and revokes the whole grant family.
	// 0 is strict rotation: the rotated-out token is reuse at once.
	RefreshGrace *caddy.Duration `json:"refresh_grace,omitempty"`
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
	Clients []ClientConfig `json:"clients,omitempty"`
	// Login configures the hosted login pages and local accounts.
	Login LoginConfig `json:"login,omitempty"`
	// EnterpriseIdPs are trusted enterprise IdPs whose ID-JAGs the token
	// endpoint accepts (JWT bearer grant; requirement 24).
	EnterpriseIdPs []EnterpriseIdPConfig `json:"enterprise_idps,omitempty"`
	// WorkloadIssuers are trusted issuers of workload tokens, accepted as
	// client assertions (requirement 23).
	WorkloadIssuers []WorkloadIssuerConfig `json:"workload_issuers,omitempty"`
	// CIMD accepts clients identified by an https URL to their Client ID
	// Metadata Document (Claude, ChatGPT, VS Code). Off when absent.
	CIMD *CIMDConfig `json:"cimd,omitempty"`
	// DCR turns on Dynamic Client Registration (RFC 7591) for public PKCE
	// clients (Cursor, mcp-remote, older clients). Off when absent.
	DCR *DCRConfig `json:"dcr,omitempty"`
	// DPoP accepts DPoP proofs at the token endpoint and binds tokens to
	// the client's key (RFC 9449). Off when absent.
	DPoP *DPoPConfig `json:"dpop,omitempty"`

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
	AuditRetention caddy.Duration `json:"audit_retention,omitempty"`
	// ClientIPv4Prefix is how many leading bits of a client's IPv4 address
	// identify one requester for the per-requester budgets (token and
	// registration rate limits, stored DCR clients, login throttling).
	// Default 32: each address.
	ClientIPv4Prefix int `json:"client_ipv4_prefix,omitempty"`
	// ClientIPv6Prefix is the same for IPv6 addresses. Default 64: one
	// subscriber's /64 is one requester, however many addresses it uses.
	ClientIPv6Prefix int `json:"client_ipv6_prefix,omitempty"`

	// kek and kekPrevious are the key-encryption keys as configured, with
	// placeholders replaced and files read (never logged).
	kek, kekPrevious string

	metrics *Metrics
	ctx     caddy.Context
	logger  *zap.Logger
	slogger *slog.Logger
	store   storage.Backend
	// shared is the store's shared buckets when SharedLimits is on.
	shared abuse.SharedBuckets
	keys   *authserver.KeySet
	login  *idp.Login
	cancel context.CancelFunc
	st     *appState
	// prm is this config's registry of the guards' metadata paths.
	prm *prmRegistry
	// refusals aggregates unauthenticated refusals for the audit log;
	// refusalsDone closes once its last records are written.
	refusals     *abuse.Aggregator
	refusalsDone chan struct{}
	// auditW writes the audit events that are not security decisions
	// (batched, retried, bounded); closed by Stop and Cleanup.
	auditW *audit.Writer
}

// appState is the app's mutable runtime state, behind a pointer so that the
// module value stays copyable.
type appState struct {
	mu       sync.Mutex
	extraRes []string
	tools    map[string]authserver.ToolMap // per-tool scope maps of guarded resources
	once     sync.Once
	server   *authserver.Server
	srvErr   error
}

// CIMDConfig configures Client ID Metadata Documents.
type CIMDConfig struct {
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
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// UntrustedTimeout bounds a whole fetch from a host outside
	// TrustedHosts, with policy "any" (default 3s, at most Timeout).
	UntrustedTimeout caddy.Duration `json:"untrusted_timeout,omitempty"`
	// CacheMin and CacheMax bound how long a document is cached (defaults 5m, 24h).
	CacheMin caddy.Duration `json:"cache_min,omitempty"`
	CacheMax caddy.Duration `json:"cache_max,omitempty"`
	// NegativeCache is how long a failed client id is remembered, so that
	// asking again costs no fetch (default 30s; negative: off).
	NegativeCache caddy.Duration `json:"negative_cache,omitempty"`
	// ServeStale is how long past expiry a document that resolved before is
	// still served when its refetch fails transiently (default 1h; negative: off).
	ServeStale caddy.Duration `json:"serve_stale,omitempty"`
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
	AccessTokenLifetime caddy.Duration `json:"access_token_lifetime,omitempty"`
	// RefreshTokenLifetime is the idle life of the client's refresh tokens
	// (the grant lifetime still ends them).
	RefreshTokenLifetime caddy.Duration `json:"refresh_token_lifetime,omitempty"`
	// Scopes the client may ask for (each among the server's scopes): a
	// request for another is refused with invalid_scope.
	Scopes []string `json:"scopes,omitempty"`
	// RememberConsent is how long the user's "remember this decision"
	// lasts for the client (default 90 days); negative (off in the
	// Caddyfile) never remembers it.
	RememberConsent caddy.Duration `json:"remember_consent,omitempty"`
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
	Interval caddy.Duration `json:"interval"`
}

// perSecond is the sustained rate of a budget (nil: 0, the default).
func (r *CIMDRate) perSecond() (float64, int) {
	if r == nil || r.Interval <= 0 {
		return 0, 0
	}
	return float64(r.Burst) / time.Duration(r.Interval).Seconds(), r.Burst
}

// DCRConfig configures Dynamic Client Registration.
type DCRConfig struct {
	// RateBurst registrations per requester (client IP, IPv6 by /64) at once (default 10) …
	RateBurst int `json:"rate_burst,omitempty"`
	// … refilled one every RateEvery (default 6m).
	RateEvery caddy.Duration `json:"rate_every,omitempty"`
	// GlobalRateBurst registrations from all requesters together at once (default 60) …
	GlobalRateBurst int `json:"global_rate_burst,omitempty"`
	// … refilled one every GlobalRateEvery (default 10s).
	GlobalRateEvery caddy.Duration `json:"global_rate_every,omitempty"`
	// MaxClientsPerPrefix caps the stored clients registered from one
	// requester (default 100); further registrations get 429 until unused
	// ones expire.
	MaxClientsPerPrefix int `json:"max_clients_per_prefix,omitempty"`
	// MaxClients caps the stored registered clients in all (default 10000).
	MaxClients int `json:"max_clients,omitempty"`
	// ExpireUnused deletes registered clients unused for this long (default 720h; 0 keeps them).
	ExpireUnused *caddy.Duration `json:"expire_unused,omitempty"`
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

// ClientConfig is an owned client seeded from config.
type ClientConfig struct {
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
	AccessTokenLifetime caddy.Duration `json:"access_token_lifetime,omitempty"`
	// RefreshTokenLifetime overrides the server's.
	RefreshTokenLifetime caddy.Duration `json:"refresh_token_lifetime,omitempty"`
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

// LoginConfig configures the hosted login.
type LoginConfig struct {
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
	SMTP *SMTPConfig `json:"smtp,omitempty"`
	// Users are password accounts created at start when missing.
	Users []UserConfig `json:"users,omitempty"`
	// SessionIdle ends a browser session after this much inactivity (default 8h).
	SessionIdle caddy.Duration `json:"session_idle,omitempty"`
	// SessionLifetime ends a browser session this long after sign-in (default 7 days).
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`
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

// SMTPConfig is the SMTP server of the hosted login's mails.
type SMTPConfig struct {
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

// UserConfig is a password account seeded from config.
type UserConfig struct {
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

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "mcp_auth",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens the store and the signing keys, and builds the hosted login.
func (a *App) Provision(ctx caddy.Context) error {
	if err := a.provision(ctx); err != nil {
		return a.positioned(err)
	}
	return nil
}

// positionRE matches an error that already names its Caddyfile line.
var positionRE = regexp.MustCompile(`^[^\s:]+:\d+: `)

// positioned prefixes a configuration error with the mcp_auth block's
// Caddyfile line when it names none of its own (a client's or a user's
// errors name theirs), and logs it first so that it leads the output of
// `caddy validate` and `caddy run`.
func (a *App) positioned(err error) error {
	if a.Source != "" && !positionRE.MatchString(err.Error()) {
		err = fmt.Errorf("%s%w", at(a.Source), err)
	}
	if a.logger != nil {
		a.logger.Error(err.Error())
	}
	return err
}

func (a *App) provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.st = &appState{}
	a.prm = newPRMRegistry()
	a.logger = ctx.Logger()
	a.slogger = ctx.Slogger()
	repl := caddy.NewReplacer()

	a.Issuer = strings.TrimRight(repl.ReplaceKnown(a.Issuer, ""), "/")
	if err := a.Storage.provision(repl); err != nil {
		return err
	}
	if a.SigningAlgorithm == "" {
		a.SigningAlgorithm = "ES256"
	}
	if a.ClientIPv4Prefix == 0 {
		a.ClientIPv4Prefix = abuse.DefaultIPv4Bits
	}
	if a.ClientIPv6Prefix == 0 {
		a.ClientIPv6Prefix = abuse.DefaultIPv6Bits
	}
	if a.AccessTokenLifetime == 0 {
		a.AccessTokenLifetime = caddy.Duration(time.Hour)
	}
	if a.RefreshGrace == nil {
		g := caddy.Duration(authserver.DefaultRefreshGrace)
		a.RefreshGrace = &g
	}
	for i := range a.Clients {
		c := &a.Clients[i]
		raw := c.Secret
		c.Secret = repl.ReplaceKnown(raw, "")
		if raw != "" && strings.TrimSpace(c.Secret) == "" {
			return a.refuseConfig(fmt.Errorf("%smcp_auth: client %q: its secret %s is empty%s: set it before starting Caddy, or remove `secret` to make the client public",
				at(c.Source), c.ID, raw, unsetVars(raw)))
		}
	}
	for i := range a.Login.Users {
		u := &a.Login.Users[i]
		raw := u.Password
		u.Password = repl.ReplaceKnown(raw, "")
		if strings.TrimSpace(u.Password) == "" && u.PasswordHash == "" {
			what := "has no password"
			if raw != "" {
				what = "its password " + raw + " is empty" + unsetVars(raw)
			}
			return a.refuseConfig(fmt.Errorf("%smcp_auth: login user %s %s: set it before starting Caddy (the account would be created without a password), or remove the user",
				at(u.Source), u.Email, what))
		}
	}
	if err := a.provisionKEK(repl); err != nil {
		return err
	}
	warnAdminExposure(a.logger, adminOf(ctx))
	if s := a.Login.SMTP; s != nil {
		s.Host = repl.ReplaceKnown(s.Host, "")
		s.From = repl.ReplaceKnown(s.From, "")
		s.Username = repl.ReplaceKnown(s.Username, "")
		s.Password = repl.ReplaceKnown(s.Password, "")
	}
	if a.TokenRateBurst <= 0 {
		a.TokenRateBurst = 50
	}
	if a.DCR != nil {
		if a.DCR.RateEvery <= 0 {
			a.DCR.RateEvery = caddy.Duration(6 * time.Minute)
		}
		if a.DCR.RateBurst <= 0 {
			a.DCR.RateBurst = authserver.DefaultRegistrationBurst
		}
		if a.DCR.GlobalRateEvery <= 0 {
			a.DCR.GlobalRateEvery = caddy.Duration(authserver.DefaultRegistrationGlobalGap)
		}
		if a.DCR.GlobalRateBurst <= 0 {
			a.DCR.GlobalRateBurst = authserver.DefaultRegistrationGlobal
		}
		if a.DCR.MaxClientsPerPrefix <= 0 {
			a.DCR.MaxClientsPerPrefix = authserver.DefaultMaxClientsPerPrefix
		}
		if a.DCR.MaxClients <= 0 {
			a.DCR.MaxClients = authserver.DefaultMaxClients
		}
		if a.DCR.ExpireUnused == nil {
			d := caddy.Duration(authserver.DefaultDCRExpireUnused)
			a.DCR.ExpireUnused = &d
		}
	}
	if a.CIMD != nil && a.CIMD.InsecureAllowLoopback {
		a.logger.Warn("mcp_auth: cimd insecure_allow_loopback is ON: client metadata documents may be fetched from this machine; never use this in production")
	}
	if err := a.Validate(); err != nil {
		return err
	}

	m, err := registerMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("mcp_auth: metrics: %w", err)
	}
	a.metrics = m

	store, err := a.Storage.open(a.slogger)
	if err != nil {
		return err
	}
	a.store = store
	if a.SharedLimits {
		sb, ok := store.(abuse.SharedBuckets)
		if !ok {
			return errors.New("mcp_auth: shared_limits: this storage cannot share limits")
		}
		a.shared = sb
	}

	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	kc, err := a.keyConfig()
	if err != nil {
		return err
	}
	keys, err := authserver.NewKeySet(runCtx, store, kc)
	if err != nil {
		return fmt.Errorf("mcp_auth: signing keys: %w", err)
	}
	a.keys = keys
	go keys.Run(runCtx)
	mc := authserver.MaintenanceConfig{AuditRetention: time.Duration(a.AuditRetention), Logger: a.slogger}
	if a.DCR != nil && a.DCR.ExpireUnused != nil {
		mc.DCRUnusedFor = time.Duration(*a.DCR.ExpireUnused)
	}
	go authserver.RunMaintenance(runCtx, store, mc)
	a.refusals = abuse.NewAggregator(abuse.AggregatorConfig{Store: store, Logger: a.slogger})
	a.auditW = audit.NewWriter(audit.Config{Store: store, Logger: a.slogger, OnDrop: a.metrics.OnAuditDrop})
	a.auditW.Start()
	a.refusalsDone = make(chan struct{})
	go func() { defer close(a.refusalsDone); a.refusals.Run(runCtx, refusalFlushEvery) }()

	providers, err := a.providers(ctx, runCtx)
	if err != nil {
		return err
	}
	icfg := a.idpConfig(store)
	icfg.SharedLimits = a.shared
	icfg.Providers = providers
	if s := a.Login.SMTP; s != nil {
		m, err := mailer.New(mailer.Config{Host: s.Host, Port: s.Port, TLS: s.TLS, From: s.From, Username: s.Username, Password: s.Password})
		if err != nil {
			return fmt.Errorf("mcp_auth: login smtp: %w", err)
		}
		icfg.Mailer = m
	}
	login, err := idp.New(runCtx, icfg)
	if err != nil {
		return fmt.Errorf("mcp_auth: hosted login: %w", err)
	}
	a.login = login
	return nil
}

// refuseConfig logs a configuration refusal found at provision before
// returning it, so that it leads the output of `caddy validate` and `caddy
// run` (Caddy prefixes the returned error with the whole module path).
func (a *App) refuseConfig(err error) error {
	return err // logged once, by positioned
}

// at prefixes an error with a Caddyfile position ("" without one).
func at(source string) string {
	if source == "" {
		return ""
	}
	return source + ": "
}

// envPlaceholder matches {env.NAME} placeholders.
var envPlaceholder = regexp.MustCompile(`\{env\.([^{}]+)\}`)

// unsetVars names the environment variables of raw's {env.*} placeholders
// that are not set (" (environment variable X is not set)"), or "".
func unsetVars(raw string) string {
	var names []string
	for _, m := range envPlaceholder.FindAllStringSubmatch(raw, -1) {
		if v, ok := os.LookupEnv(m[1]); !ok || strings.TrimSpace(v) == "" {
			names = append(names, m[1])
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return " (environment variable " + names[0] + " is not set)"
	}
	return " (environment variables " + strings.Join(names, ", ") + " are not set)"
}

// Validate checks the configuration's invariants; an error names the
// Caddyfile line of the mcp_auth block (or of the client or user at fault).
func (a *App) Validate() error {
	if err := a.validate(); err != nil {
		return a.positioned(err)
	}
	return nil
}

func (a *App) validate() error {
	if err := a.DPoP.validate(); err != nil { // dpop.go
		return err
	}
	if a.Issuer == "" {
		return errors.New("mcp_auth: issuer is required (the exact URL clients see, e.g. https://auth.example.com)")
	}
	if err := authserver.ValidateIssuer(a.Issuer); err != nil {
		return fmt.Errorf("mcp_auth: %w", err)
	}
	if a.SharedLimits && a.Storage.Backend != "postgres" {
		return errors.New("mcp_auth: shared_limits needs storage postgres (with bbolt there is one instance per file, so every limit is already whole)")
	}
	if a.ClientIPv4Prefix < 0 || a.ClientIPv4Prefix > 32 {
		return fmt.Errorf("mcp_auth: client_ipv4_prefix %d must be between 1 and 32", a.ClientIPv4Prefix)
	}
	if a.ClientIPv6Prefix < 0 || a.ClientIPv6Prefix > 128 {
		return fmt.Errorf("mcp_auth: client_ipv6_prefix %d must be between 1 and 128", a.ClientIPv6Prefix)
	}
	switch a.SigningAlgorithm {
	case "ES256", "EdDSA", "RS256":
	default:
		return fmt.Errorf("mcp_auth: signing_algorithm %q: use ES256, EdDSA or RS256", a.SigningAlgorithm)
	}
	if err := a.validateKEK(); err != nil {
		return err
	}
	if a.CodeLifetime < 0 || time.Duration(a.CodeLifetime) > authserver.MaxCodeTTL {
		return fmt.Errorf("mcp_auth: code_lifetime must be at most %s", authserver.MaxCodeTTL)
	}
	if g := a.RefreshGrace; g != nil && (*g < 0 || time.Duration(*g) > authserver.MaxRefreshGrace) {
		return fmt.Errorf("mcp_auth: refresh_grace must be from 0 (strict rotation) to %s", authserver.MaxRefreshGrace)
	}
	seen := map[string]bool{}
	for _, c := range a.Clients {
		if c.ID == "" {
			return errors.New("mcp_auth: a client needs an id")
		}
		if oauth.IsCIMDClientID(c.ID) || strings.HasPrefix(c.ID, "http://") {
			return fmt.Errorf("%smcp_auth: client %q: owned client ids must not be URLs (those are CIMD clients)", at(c.Source), c.ID)
		}
		if seen[c.ID] {
			return fmt.Errorf("%smcp_auth: client %q is configured twice", at(c.Source), c.ID)
		}
		seen[c.ID] = true
		for _, g := range c.GrantTypes {
			if g != oauth.GrantAuthorizationCode && g != oauth.GrantRefreshToken && g != oauth.GrantClientCredentials {
				return fmt.Errorf("%smcp_auth: client %q: grant_types %q: use authorization_code, refresh_token or client_credentials", at(c.Source), c.ID, g)
			}
		}
		if len(c.RedirectURIs) == 0 && slices.Contains(grantTypesOr(c.GrantTypes), oauth.GrantAuthorizationCode) {
			return fmt.Errorf("%smcp_auth: client %q needs at least one redirect_uri", at(c.Source), c.ID)
		}
		for _, ru := range c.RedirectURIs {
			if _, err := oauth.CheckRedirectURI(ru, oauth.OwnedRedirects); err != nil {
				return fmt.Errorf("%smcp_auth: client %q: %w", at(c.Source), c.ID, err)
			}
		}
		switch {
		case c.Secret != "" && (c.JWKSURI != "" || c.JWKSFile != ""):
			return fmt.Errorf("%smcp_auth: client %q: use secret or keys (jwks_uri, jwks_file), not both", at(c.Source), c.ID)
		case c.JWKSURI != "" && c.JWKSFile != "":
			return fmt.Errorf("%smcp_auth: client %q: use jwks_uri or jwks_file, not both", at(c.Source), c.ID)
		case c.JWKSURI != "" && !strings.HasPrefix(c.JWKSURI, "https://"):
			return fmt.Errorf("%smcp_auth: client %q: jwks_uri must be an https URL", at(c.Source), c.ID)
		}
	}
	if err := a.validateTrusted(); err != nil {
		return err
	}
	if a.CIMD != nil {
		switch a.CIMD.Policy {
		case "", "trusted", "any":
		default:
			return fmt.Errorf("mcp_auth: cimd policy %q: use trusted or any", a.CIMD.Policy)
		}
		for name, r := range map[string]*CIMDRate{"host_rate": a.CIMD.HostRate, "domain_rate": a.CIMD.DomainRate, "requester_rate": a.CIMD.RequesterRate} {
			if r != nil && (r.Burst < 1 || r.Interval <= 0) {
				return fmt.Errorf("mcp_auth: cimd %s: burst must be at least 1 and interval positive", name)
			}
		}
		if a.CIMD.Timeout < 0 || a.CIMD.UntrustedTimeout < 0 {
			return errors.New("mcp_auth: cimd timeouts must not be negative")
		}
		if err := a.validateCIMDPolicies(); err != nil {
			return err
		}
	}
	names := map[string]bool{}
	for _, n := range a.Login.providerNames() {
		if !idp.ValidProviderName(n) {
			return fmt.Errorf("mcp_auth: provider name %q: use 1-32 lower-case letters, digits and -", n)
		}
		if names[n] {
			return fmt.Errorf("mcp_auth: provider %q is configured twice", n)
		}
		names[n] = true
	}
	for domain, p := range a.Login.HomeRealm {
		if !names[p] {
			return fmt.Errorf("mcp_auth: home_realm %s names unknown provider %q", domain, p)
		}
	}
	switch a.Login.Signup {
	case "", "off", "open":
	case "domains":
		if len(a.Login.SignupDomains) == 0 {
			return errors.New("mcp_auth: signup domains needs at least one domain")
		}
	default:
		return fmt.Errorf("mcp_auth: signup %q: use off, open or domains", a.Login.Signup)
	}
	if s := a.Login.SMTP; s != nil {
		if s.Host == "" || s.From == "" {
			return errors.New("mcp_auth: login smtp needs host and from")
		}
		switch s.TLS {
		case "", "starttls", "tls", "none":
		default:
			return fmt.Errorf("mcp_auth: login smtp tls %q: use starttls, tls or none", s.TLS)
		}
	}
	return nil
}

// Start builds the authorization server once every handler of the config
// has registered its resource.
func (a *App) Start() error {
	if _, err := a.Server(); err != nil {
		return err
	}
	v := PluginVersion()
	a.logger.Info("mcp_auth started", zap.String("version", v.Version), zap.String("revision", v.Revision), zap.Bool("modified", v.Modified))
	return nil
}

// Stop stops background work and flushes the authorization server's batched
// audit events and the aggregated refusals (requests still in flight then
// write theirs directly).
func (a *App) Stop() error {
	if a.cancel != nil {
		a.cancel()
	}
	a.waitRefusals()
	var err error
	if a.st != nil && a.st.server != nil {
		err = a.st.server.Close()
	}
	if a.auditW != nil {
		a.auditW.Close()
	}
	return err
}

// Cleanup releases the store (closed when no config uses it any more).
// Safe after a partial Provision.
func (a *App) Cleanup() error {
	if a.cancel != nil {
		a.cancel()
	}
	a.waitRefusals()
	if a.auditW != nil {
		a.auditW.Close()
	}
	if a.store != nil {
		return a.Storage.release()
	}
	return nil
}

// refusalFlushEvery is how often ended minutes of aggregated refusals are
// written.
const refusalFlushEvery = 15 * time.Second

// waitRefusals waits until the refusal aggregator has written its last
// records (after cancel).
func (a *App) waitRefusals() {
	if a.refusalsDone != nil {
		<-a.refusalsDone
	}
}

// RegisterResource adds a protected resource that tokens may be bound to.
// Resource guards call it while they are provisioned.
func (a *App) RegisterResource(resource string) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	if !slices.Contains(a.st.extraRes, resource) {
		a.st.extraRes = append(a.st.extraRes, resource)
	}
}

// Server returns the authorization server, building it on first use.
func (a *App) Server() (*authserver.Server, error) {
	a.st.once.Do(func() { a.st.server, a.st.srvErr = a.buildServer() })
	return a.st.server, a.st.srvErr
}

// Keys returns the signing key set (also the in-process key source of guards).
func (a *App) Keys() *authserver.KeySet { return a.keys }

// prmRegistry is this config's registry of guard metadata paths.
func (a *App) prmRegistry() *prmRegistry {
	if a == nil || a.prm == nil {
		return standalonePRM
	}
	return a.prm
}

// Store returns the storage backend.
func (a *App) Store() storage.Backend { return a.store }

// Active implements the guard's revocation check against this app's store.
func (a *App) Active(ctx context.Context, grantID, clientID string) (bool, error) {
	s, err := a.Server()
	if err != nil {
		return false, err
	}
	return s.Active(ctx, grantID, clientID)
}

func (a *App) keyConfig() (authserver.KeyConfig, error) {
	// The publication window of retired keys is the authorization server's
	// to decide (authserver.New raises it to cover every access-token
	// lifetime it mints).
	enc, err := a.keyEncryption()
	if err != nil {
		return authserver.KeyConfig{}, err
	}
	return authserver.KeyConfig{
		Algorithm:   a.SigningAlgorithm,
		RotateEvery: time.Duration(a.KeyRotation),
		ReloadEvery: time.Duration(a.KeyReload),
		PrePublish:  time.Duration(a.KeyPrePublish),
		Logger:      a.slogger,
		Encryption:  enc,
	}, nil
}

func (a *App) knownResources() []string {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	out := slices.Clone(a.Resources)
	for _, r := range a.st.extraRes {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func (a *App) resourcePolicy() (authserver.ResourcePolicy, error) {
	on := func(b *bool) bool { return b == nil || *b }
	ri := a.ResourceIndicators
	if ri == nil {
		ri = &ResourceIndicators{}
	}
	p := authserver.ResourcePolicy{
		Enabled:                on(ri.Enabled),
		ClientAudienceFallback: on(ri.ClientAudienceFallback),
		EnforceOnTokenExchange: on(ri.EnforceOnTokenExchange),
		KeepBindingOnRefresh:   on(ri.KeepBindingOnRefresh),
	}
	for _, r := range a.knownResources() {
		n, err := authserver.NormalizeResource(r)
		if err != nil {
			return p, fmt.Errorf("mcp_auth: resource %q: %w", r, err)
		}
		if !slices.Contains(p.Known, n) {
			p.Known = append(p.Known, n)
		}
	}
	if a.DefaultResource != "" {
		n, err := authserver.NormalizeResource(a.DefaultResource)
		if err != nil {
			return p, fmt.Errorf("mcp_auth: default_resource: %w", err)
		}
		p.Default = n
		if !slices.Contains(p.Known, n) {
			p.Known = append(p.Known, n)
		}
	} else if len(p.Known) == 1 {
		p.Default = p.Known[0]
	}
	return p, nil
}

func (a *App) ownedClients() ([]storage.Client, error) {
	out := make([]storage.Client, 0, len(a.Clients))
	for _, c := range a.Clients {
		sc := storage.Client{
			ID:                      c.ID,
			Kind:                    storage.ClientOwned,
			Name:                    c.Name,
			RedirectURIs:            c.RedirectURIs,
			GrantTypes:              grantTypesOr(c.GrantTypes),
			Scopes:                  c.Scopes,
			DefaultScopes:           c.DefaultScopes,
			AccessTokenTTL:          time.Duration(c.AccessTokenLifetime),
			RefreshTokenTTL:         time.Duration(c.RefreshTokenLifetime),
			TokenEndpointAuthMethod: "none",
			SkipConsent:             c.SkipConsent,
		}
		if sc.Name == "" {
			sc.Name = c.ID
		}
		if c.Audience != "" {
			n, err := authserver.NormalizeResource(c.Audience)
			if err != nil {
				return nil, fmt.Errorf("mcp_auth: client %q audience: %w", c.ID, err)
			}
			sc.DefaultAudience = n
		}
		if c.Secret != "" {
			h, err := authserver.HashClientSecret(c.Secret)
			if err != nil {
				return nil, err
			}
			sc.SecretHash = h
			sc.TokenEndpointAuthMethod = "client_secret_basic"
		}
		if c.JWKSURI != "" || c.JWKSFile != "" {
			sc.TokenEndpointAuthMethod = oauth.AuthMethodPrivateKeyJWT
			sc.JWKSURI = c.JWKSURI
			if c.JWKSFile != "" {
				raw, err := os.ReadFile(c.JWKSFile)
				if err != nil {
					return nil, fmt.Errorf("mcp_auth: client %q jwks_file: %w", c.ID, err)
				}
				sc.JWKS = raw
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// refreshGrace maps refresh_grace to authserver.Config.RefreshGrace: unset
// is the default, 0 strict rotation.
func (a *App) refreshGrace() time.Duration {
	switch {
	case a.RefreshGrace == nil:
		return 0
	case *a.RefreshGrace == 0:
		return authserver.NoRefreshGrace
	}
	return time.Duration(*a.RefreshGrace)
}

func (a *App) buildServer() (*authserver.Server, error) {
	policy, err := a.resourcePolicy()
	if err != nil {
		return nil, err
	}
	clients, err := a.ownedClients()
	if err != nil {
		return nil, err
	}
	cfg := authserver.Config{
		Issuer:          a.Issuer,
		PathPrefix:      a.PathPrefix,
		Store:           a.store,
		Browser:         a.login,
		Keys:            a.keys,
		Scopes:          a.Scopes,
		DefaultScopes:   a.DefaultScopes,
		Resources:       policy,
		Tools:           a.resourceTools(),
		Clients:         clients,
		CodeTTL:         time.Duration(a.CodeLifetime),
		AccessTokenTTL:  time.Duration(a.AccessTokenLifetime),
		RefreshTokenTTL: time.Duration(a.RefreshTokenLifetime),
		GrantTTL:        time.Duration(a.GrantLifetime),
		RefreshGrace:    a.refreshGrace(),
		CIMDPolicy:      a.cimdPolicy(),
		CORS:            authserver.CORS{AllowedOrigins: a.CORSOrigins},
		DPoP:            a.DPoP.serverConfig(),
		ClientIP:        clientIP,
		Logger:          a.slogger,
		OnEvent:         a.metrics.OnEvent,
		Refusals:        a.refusals,
		Audit:           a.auditW,
		TokenRatePerIP:  a.tokenRate(),
		TokenBurstPerIP: a.TokenRateBurst,
		SharedLimits:    a.shared,
		IPv4Prefix:      a.ClientIPv4Prefix,
		IPv6Prefix:      a.ClientIPv6Prefix,
		UserEmail: func(ctx context.Context, subject string) (string, bool) {
			acct, err := a.store.GetAccount(ctx, subject)
			if err != nil {
				return "", false
			}
			return acct.Email, acct.EmailVerified
		},
	}
	// One fetcher serves CIMD documents and the jwks_uri of private_key_jwt
	// clients (CIMD and owned), under the same rules and budgets.
	fetcher, err := a.cimdFetcher()
	if err != nil {
		return nil, err
	}
	cfg.JWKSFetcher = fetcher
	a.trustedIssuers(&cfg)
	if a.CIMD != nil {
		res, err := a.cimdResolver(fetcher)
		if err != nil {
			return nil, err
		}
		cfg.ClientResolver = res
	}
	if a.DCR != nil {
		opts := dcr.DefaultOptions()
		if a.DCR.PrivateSchemes != nil {
			opts.AllowPrivateSchemes = *a.DCR.PrivateSchemes
		}
		reg, err := authserver.NewRegistrationHandler(authserver.RegistrationConfig{
			Store:               a.store,
			Options:             &opts,
			RatePerIP:           rate.Every(time.Duration(a.DCR.RateEvery)),
			BurstPerIP:          a.DCR.RateBurst,
			GlobalRate:          rate.Every(time.Duration(a.DCR.GlobalRateEvery)),
			GlobalBurst:         a.DCR.GlobalRateBurst,
			MaxClientsPerPrefix: a.DCR.MaxClientsPerPrefix,
			MaxClients:          a.DCR.MaxClients,
			IPv4Prefix:          a.ClientIPv4Prefix,
			IPv6Prefix:          a.ClientIPv6Prefix,
			ClientIP:            clientIP,
			Logger:              a.slogger,
			OnEvent:             a.metrics.OnEvent,
			Refusals:            a.refusals,
			SharedLimits:        a.shared,
		})
		if err != nil {
			return nil, err
		}
		cfg.Registration = reg
	}
	return authserver.New(context.Background(), cfg)
}

// validateCIMDPolicies checks the per-client and per-host CIMD policies
// with the authorization server's rules.
func (a *App) validateCIMDPolicies() error {
	for id, p := range a.CIMD.Clients {
		if p == nil {
			return fmt.Errorf("mcp_auth: cimd client %q: empty policy", id)
		}
		if err := cimd.ValidClientIDURL(id); err != nil && !a.CIMD.InsecureAllowLoopback {
			return fmt.Errorf("mcp_auth: cimd client %q: %v", id, err)
		}
	}
	for host, p := range a.CIMD.ClientHosts {
		if p == nil {
			return fmt.Errorf("mcp_auth: cimd client_host %q: empty policy", host)
		}
	}
	offered := append(slices.Clone(a.Scopes), authserver.ScopeOfflineAccess)
	if err := a.cimdPolicy().Validate(offered); err != nil {
		return fmt.Errorf("mcp_auth: %w", err)
	}
	return nil
}

// cimdPolicy maps the CIMD policies to the authorization server's.
func (a *App) cimdPolicy() authserver.CIMDPolicy {
	var out authserver.CIMDPolicy
	conv := func(p *CIMDClientPolicy) authserver.ClientPolicy {
		cp := authserver.ClientPolicy{
			AccessTokenTTL:  time.Duration(p.AccessTokenLifetime),
			RefreshTokenTTL: time.Duration(p.RefreshTokenLifetime),
			Scopes:          p.Scopes,
			RememberConsent: time.Duration(p.RememberConsent),
			MachineUse:      p.MachineUse,
		}
		if cp.RememberConsent < 0 {
			cp.RememberConsent = authserver.ConsentNotRemembered
		}
		return cp
	}
	if a.CIMD == nil {
		return out
	}
	for id, p := range a.CIMD.Clients {
		if out.Clients == nil {
			out.Clients = map[string]authserver.ClientPolicy{}
		}
		out.Clients[id] = conv(p)
	}
	for host, p := range a.CIMD.ClientHosts {
		if out.Hosts == nil {
			out.Hosts = map[string]authserver.ClientPolicy{}
		}
		out.Hosts[host] = conv(p)
	}
	return out
}

// tokenRate is the per-IP token endpoint rate (0: no limit).
func (a *App) tokenRate() float64 {
	switch {
	case a.TokenRateLimit < 0:
		return 0
	case a.TokenRateLimit == 0:
		return 10
	}
	return a.TokenRateLimit
}

// testCIMDLookupIP replaces the CIMD fetcher's name resolution in this
// package's tests (a vendor's host resolved to a test listener); always nil
// in a running server.
var testCIMDLookupIP func(ctx context.Context, host string) ([]netip.Addr, error)

// cimdFetcher builds the fetcher of CIMD documents and JWK sets from the
// cimd options (defaults when cimd is not configured).
func (a *App) cimdFetcher() (*cimd.Fetcher, error) {
	c := a.CIMD
	if c == nil {
		c = &CIMDConfig{}
	}
	fc := cimd.FetcherConfig{
		MaxBytes:          c.MaxBytes,
		TotalTimeout:      time.Duration(c.Timeout),
		UntrustedTimeout:  time.Duration(c.UntrustedTimeout),
		AllowLoopback:     c.InsecureAllowLoopback,
		Logger:            a.slogger,
		RequesterPrefixes: abuse.Prefixes{IPv4: a.ClientIPv4Prefix, IPv6: a.ClientIPv6Prefix},
		LookupIP:          testCIMDLookupIP,
	}
	fc.PerHostRate, fc.PerHostBurst = c.HostRate.perSecond()
	fc.PerDomainRate, fc.PerDomainBurst = c.DomainRate.perSecond()
	fc.PerRequesterRate, fc.PerRequesterBurst = c.RequesterRate.perSecond()
	if c.CABundle != "" {
		pem, err := os.ReadFile(c.CABundle)
		if err != nil {
			return nil, fmt.Errorf("mcp_auth: cimd ca_bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mcp_auth: cimd ca_bundle %s has no PEM certificates", c.CABundle)
		}
		fc.ExtraCAs = pool
	}
	f, err := cimd.NewFetcher(fc)
	if err != nil {
		return nil, fmt.Errorf("mcp_auth: cimd: %w", err)
	}
	return f, nil
}

func (a *App) cimdResolver(f *cimd.Fetcher) (*cimd.Resolver, error) {
	c := a.CIMD
	return cimd.NewResolver(cimd.ResolverConfig{
		Fetcher:      f,
		TrustedHosts: cimd.ExpandTrustedHosts(c.TrustedHosts),
		Policy:       c.Policy,
		MinCacheTTL:  time.Duration(c.CacheMin),
		MaxCacheTTL:  time.Duration(c.CacheMax),
		NegativeTTL:  time.Duration(c.NegativeCache),
		MaxStale:     time.Duration(c.ServeStale),
		Logger:       a.slogger,
		OnFetch:      a.metrics.CIMDFetch,
	})
}

func (a *App) idpConfig(store storage.Backend) idp.Config {
	password := a.Login.Password == nil || *a.Login.Password
	seeds := make([]idp.SeedAccount, 0, len(a.Login.Users))
	for _, u := range a.Login.Users {
		seeds = append(seeds, idp.SeedAccount{Email: u.Email, Name: u.Name, Password: u.Password, PasswordHash: u.PasswordHash})
	}
	signup := a.Login.Signup
	if signup == "" {
		signup = "off"
	}
	return idp.Config{
		PublicURL:  a.Issuer,
		PathPrefix: a.PathPrefix,
		Store:      store,
		Branding: idp.Branding{
			ProductName: a.Login.ProductName,
			LogoURL:     a.Login.Logo,
			AccentColor: a.Login.AccentColor,
			SupportURL:  a.Login.SupportURL,
		},
		TemplatesDir:    a.Login.Templates,
		Signup:          idp.SignupPolicy{Mode: signup, Domains: a.Login.SignupDomains},
		PasswordLogin:   password,
		SeedAccounts:    seeds,
		SessionIdle:     time.Duration(a.Login.SessionIdle),
		SessionAbsolute: time.Duration(a.Login.SessionLifetime),
		HomeRealm:       a.Login.HomeRealm,
		ClientIP:        clientIP,
		Logger:          a.slogger,
		OnEvent:         a.metrics.OnEvent,
		Refusals:        a.refusals,
		Audit:           a.auditW,
		Throttle:        idp.ThrottleConfig{IPv4Prefix: a.ClientIPv4Prefix, IPv6Prefix: a.ClientIPv6Prefix},
	}
}

// clientIP is Caddy's resolved client IP (trusted_proxies aware), never a raw
// X-Forwarded-For.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = strings.Trim(host[:i], "[]")
	}
	return host
}

// appFrom returns the mcp_auth app of this config. Without one, the error
// says what to add (not "issuer is required" of an empty app).
func appFrom(ctx caddy.Context, directive string) (*App, error) {
	v, err := ctx.AppIfConfigured("mcp_auth")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil, fmt.Errorf("%s needs an authorization server, and this config has no mcp_auth app: add the global `mcp_auth { issuer https://… }` block%s",
			directive, map[bool]string{true: ", or set `issuer <url>` (and `resource`) in mcp_protect to accept an external authorization server's tokens"}[directive == "mcp_protect"])
	}
	if err != nil {
		return nil, fmt.Errorf("mcp_auth app: %w", err)
	}
	app, ok := v.(*App)
	if !ok {
		return nil, fmt.Errorf("mcp_auth app has unexpected type %T", v)
	}
	if app.store == nil {
		return nil, errors.New("mcp_auth app is not configured: add a global `mcp_auth { issuer … }` block")
	}
	return app, nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
