package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Store is the storage the hosted login needs.
type Store interface {
	storage.Accounts
	storage.Sessions
	storage.Tickets
	storage.EmailVerifications
	storage.Audit
	// RevokeSubjectGrants (of storage.Grants): a password change ends the
	// account's grants, whatever changed it (requirements 10 and 41).
	RevokeSubjectGrants(ctx context.Context, subject, reason string, now time.Time) (int, error)
	// The account page lists an account's grants (apps it connected) and
	// ends one on Disconnect; GetClient names the app.
	ListGrants(ctx context.Context, clientID, subject string) ([]storage.Grant, error)
	GetGrant(ctx context.Context, id string) (storage.Grant, error)
	RevokeGrant(ctx context.Context, id, reason string, now time.Time) error
	GetClient(ctx context.Context, id string) (storage.Client, error)
}

// Signup modes.
const (
	SignupOff     = "off"
	SignupOpen    = "open"
	SignupDomains = "domains"
)

// Config configures the hosted login.
type Config struct {
	// PublicURL is the issuer URL (https in production). Its origin builds
	// every absolute URL and the CSP form-action; its scheme decides whether
	// cookies are Secure and __Host- prefixed. Never taken from request headers.
	PublicURL string
	// PathPrefix is prepended to the login routes ("" serves /login,
	// /signup, /logout and /login/<provider>/...).
	PathPrefix string
	// Store persists accounts, sessions, tickets and the audit log.
	Store Store
	// Branding is the operator's product name, logo, accent colour and support link.
	Branding Branding
	// TemplatesDir, when set, is a directory whose template files replace the
	// embedded ones of the same name (layout.html, login.html, ...).
	TemplatesDir string
	// Signup is the self-service signup policy.
	Signup SignupPolicy
	// Mailer, when set, sends signup verification links (and "you already
	// have an account" notices); a self-signup account then gets no grant
	// until its email is verified. Nil: no mail, and self-signup emails
	// stay unverified (never asserted downstream).
	Mailer Mailer
	// VerificationTTL is how long a verification link works (default 24h).
	VerificationTTL time.Duration
	// PasswordLogin enables email + password login for local accounts.
	PasswordLogin bool
	// SeedAccounts are created (or brought in line) at New.
	SeedAccounts []SeedAccount
	// SessionIdle ends a session not used for this long (default 8h).
	SessionIdle time.Duration
	// SessionAbsolute ends a session this long after sign-in (default 7 days).
	SessionAbsolute time.Duration
	// ClientIP returns the client IP of a request as the proxy resolved it
	// (Caddy's trusted_proxies-aware client IP). Default: the host of
	// r.RemoteAddr. Never a raw X-Forwarded-For.
	ClientIP func(*http.Request) string
	// Throttle limits failed logins.
	Throttle ThrottleConfig
	// Providers are upstream identity providers, shown as buttons.
	Providers []Provider
	// HomeRealm routes an email domain (lower-case, e.g. "example.com") to
	// the provider of that name. When set, the login page asks for the email
	// first.
	HomeRealm map[string]string
	// PasswordHasher hashes passwords; nil uses password.Default() (argon2id
	// at the minimum cost). Use password.NewHasher to raise the cost.
	PasswordHasher PasswordHasher
	// ScopeDescriptions are shown on the consent page for the operator's own
	// scopes ("tickets:write" -> "Create and update tickets"); they override
	// the built-in descriptions.
	ScopeDescriptions map[string]string
	// Language is the pages' lang attribute (default "en").
	Language string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives operational logs (nil: discarded; the caller injects
	// its logger, there is no global fallback).
	Logger *slog.Logger
	// OnEvent, when set, is called with every audit event after it is stored
	// (or, for an unauthenticated refusal, counted by Refusals).
	OnEvent func(storage.AuditEvent)
	// Refusals aggregates unauthenticated refusals (CSRF failures,
	// throttled logins and signups, refused upstream callbacks) into one
	// stored record per reason, source prefix and minute. Nil: the login
	// keeps an aggregator of its own, whose records are written when a
	// later refusal arrives after their minute.
	Refusals *abuse.Aggregator
	// SharedLimits, when set, makes login and signup throttling count
	// failures across the instances sharing it (see throttle); nil: per
	// instance.
	SharedLimits abuse.SharedBuckets
	// Audit, when set, writes the audit events that are not security
	// decisions (batched; see internal/audit). Nil writes every event
	// synchronously.
	Audit *audit.Writer
}

// PasswordHasher hashes and verifies passwords; *password.Hasher implements
// it. Nil uses password.Default().
type PasswordHasher interface {
	Hash(pw string) (string, error)
	Verify(phc, pw string) (ok, needsRehash bool, err error)
	VerifyDummy(pw string) bool
}

// Branding makes the pages the operator's own.
type Branding struct {
	// ProductName is shown in titles and headings (default "Sign in").
	ProductName string
	// LogoURL is an https URL, a same-origin path or a data:image URL.
	LogoURL string
	// AccentColor is a CSS hex colour (#rgb or #rrggbb) for buttons, links and focus rings.
	AccentColor string
	// SupportURL is linked from error pages (https or mailto:).
	SupportURL string
	// SupportEmail is shown on error pages when set.
	SupportEmail string
}

// SignupPolicy says who may create a password account.
type SignupPolicy struct {
	// Mode is "off" (default), "open" or "domains".
	Mode string
	// Domains lists the email domains allowed to sign up in "domains" mode.
	Domains []string
}

// SeedAccount is an account configured by the operator.
type SeedAccount struct {
	Email string
	Name  string
	// Password is the plaintext password (from config placeholders such as
	// {env.X}); or PasswordHash an argon2id PHC string. At most one.
	Password     string
	PasswordHash string
}

// ThrottleConfig limits failed logins. Failures are counted in a sliding
// window per (account, client prefix), per client prefix and per account:
//
//   - AccountFailures from one client prefix lock that prefix out of that
//     account for Lockout, doubling with each further lockout up to
//     MaxLockout. The account's owner elsewhere is not locked out.
//   - IPFailures from one client prefix, whatever the accounts, lock the
//     prefix out of every account the same way (password spraying).
//   - From BackoffAfter failures on an account, from any addresses, each
//     further failure holds every sign-in to that account back for
//     Backoff, doubling up to MaxBackoff (a short refusal with
//     Retry-After; refused attempts do not count). This bounds the guesses
//     of an attacker with many addresses to about one per MaxBackoff.
//
// A client prefix is the client IP cut to IPv4Prefix or IPv6Prefix bits.
type ThrottleConfig struct {
	// AccountFailures per Window from one client prefix before that prefix
	// is locked out of the account (default 5).
	AccountFailures int
	// IPFailures per Window before a client prefix is locked (default 20).
	IPFailures int
	// Window is the counting window (default 15m).
	Window time.Duration
	// Lockout is the first lockout (default 1m); MaxLockout the cap (default 1h).
	Lockout    time.Duration
	MaxLockout time.Duration
	// BackoffAfter failures on one account per Window start its back-off
	// (default 10).
	BackoffAfter int
	// Backoff is the first account-wide back-off (default 1s); MaxBackoff
	// the cap (default 1m).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// SignupsPerIP per Window and client prefix (default 10).
	SignupsPerIP int
	// IPv4Prefix and IPv6Prefix are the bits of a client IP that identify a
	// requester (defaults 32 and 64).
	IPv4Prefix int
	IPv6Prefix int
}

func (t *ThrottleConfig) defaults() {
	if t.AccountFailures <= 0 {
		t.AccountFailures = 5
	}
	if t.IPFailures <= 0 {
		t.IPFailures = 20
	}
	if t.Window <= 0 {
		t.Window = 15 * time.Minute
	}
	if t.Lockout <= 0 {
		t.Lockout = time.Minute
	}
	if t.MaxLockout <= 0 {
		t.MaxLockout = time.Hour
	}
	if t.MaxLockout < t.Lockout {
		t.MaxLockout = t.Lockout
	}
	if t.BackoffAfter <= 0 {
		t.BackoffAfter = 10
	}
	if t.Backoff <= 0 {
		t.Backoff = time.Second
	}
	if t.MaxBackoff <= 0 {
		t.MaxBackoff = time.Minute
	}
	if t.MaxBackoff < t.Backoff {
		t.MaxBackoff = t.Backoff
	}
	if t.SignupsPerIP <= 0 {
		t.SignupsPerIP = 10
	}
	if t.IPv4Prefix <= 0 || t.IPv4Prefix > 32 {
		t.IPv4Prefix = abuse.DefaultIPv4Bits
	}
	if t.IPv6Prefix <= 0 || t.IPv6Prefix > 128 {
		t.IPv6Prefix = abuse.DefaultIPv6Bits
	}
}

var hexColor = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// validate checks the configuration and fills defaults. It returns the
// parsed public URL.
func (c *Config) validate() (*url.URL, error) {
	if c.Store == nil {
		return nil, errors.New("idp: config: store is required")
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("idp: config: public URL %q must be an absolute http(s) URL without query or fragment", c.PublicURL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("idp: config: public URL %q must use https (http is allowed on loopback only)", c.PublicURL)
	}
	if c.PathPrefix != "" {
		if !strings.HasPrefix(c.PathPrefix, "/") || strings.HasSuffix(c.PathPrefix, "/") || strings.Contains(c.PathPrefix, "//") ||
			strings.ContainsAny(c.PathPrefix, "?#\\ \"'<>") {
			return nil, fmt.Errorf("idp: config: path prefix %q must start with / and not end with /", c.PathPrefix)
		}
	}
	b := &c.Branding
	if b.ProductName == "" {
		b.ProductName = "Sign in"
	}
	if b.AccentColor == "" {
		b.AccentColor = "#2563eb"
	}
	if !hexColor.MatchString(b.AccentColor) {
		return nil, fmt.Errorf("idp: config: accent colour %q must be a CSS hex colour (#rgb or #rrggbb)", b.AccentColor)
	}
	if b.LogoURL != "" && !validLogo(b.LogoURL) {
		return nil, fmt.Errorf("idp: config: logo %q must be an https URL, a path starting with / or a data:image URL", b.LogoURL)
	}
	if b.SupportURL != "" {
		su, err := url.Parse(b.SupportURL)
		if err != nil || !(su.Scheme == "https" && su.Host != "" || su.Scheme == "mailto" || su.Scheme == "http" && isLoopback(su.Hostname())) {
			return nil, fmt.Errorf("idp: config: support URL %q must be an https or mailto: URL", b.SupportURL)
		}
	}
	if b.SupportEmail != "" {
		if a, err := mail.ParseAddress(b.SupportEmail); err != nil || a.Address != b.SupportEmail {
			return nil, fmt.Errorf("idp: config: support email %q is not an email address", b.SupportEmail)
		}
	}
	switch c.Signup.Mode {
	case "":
		c.Signup.Mode = SignupOff
	case SignupOff, SignupOpen:
	case SignupDomains:
		if len(c.Signup.Domains) == 0 {
			return nil, errors.New("idp: config: signup mode \"domains\" needs at least one domain")
		}
	default:
		return nil, fmt.Errorf("idp: config: signup mode %q must be off, open or domains", c.Signup.Mode)
	}
	for i, d := range c.Signup.Domains {
		d = strings.ToLower(strings.TrimSpace(d))
		if !validDomain(d) {
			return nil, fmt.Errorf("idp: config: signup domain %q is not a domain name", c.Signup.Domains[i])
		}
		c.Signup.Domains[i] = d
	}
	if c.Signup.Mode != SignupOff && !c.PasswordLogin {
		return nil, errors.New("idp: config: signup needs password login")
	}
	if c.VerificationTTL <= 0 {
		c.VerificationTTL = 24 * time.Hour
	}
	if c.SessionIdle <= 0 {
		c.SessionIdle = 8 * time.Hour
	}
	if c.SessionAbsolute <= 0 {
		c.SessionAbsolute = 7 * 24 * time.Hour
	}
	if c.SessionIdle > c.SessionAbsolute {
		c.SessionIdle = c.SessionAbsolute
	}
	if c.ClientIP == nil {
		c.ClientIP = remoteIP
	}
	c.Throttle.defaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Refusals == nil {
		c.Refusals = abuse.NewAggregator(abuse.AggregatorConfig{Store: c.Store, Now: c.Now, Logger: c.Logger})
	}
	if c.Language == "" {
		c.Language = "en"
	}
	names := map[string]bool{}
	for _, p := range c.Providers {
		if p == nil {
			return nil, errors.New("idp: config: nil provider")
		}
		n := p.Name()
		if !ValidProviderName(n) {
			return nil, fmt.Errorf("idp: config: provider name %q must be 1-32 lower-case letters, digits or -", n)
		}
		if names[n] {
			return nil, fmt.Errorf("idp: config: duplicate provider name %q", n)
		}
		names[n] = true
	}
	hr := make(map[string]string, len(c.HomeRealm))
	for d, p := range c.HomeRealm {
		ld := strings.ToLower(strings.TrimSpace(d))
		if !validDomain(ld) {
			return nil, fmt.Errorf("idp: config: home realm domain %q is not a domain name", d)
		}
		if !names[p] {
			return nil, fmt.Errorf("idp: config: home realm %q names unknown provider %q", d, p)
		}
		hr[ld] = p
	}
	c.HomeRealm = hr
	if !c.PasswordLogin && len(c.Providers) == 0 {
		return nil, errors.New("idp: config: no way to sign in: enable password login or add a provider")
	}
	return u, nil
}

// ValidProviderName reports whether n may name an upstream provider: 1-32
// lower-case ASCII letters, digits and "-". The name is a path segment of
// the provider's callback URLs, a metrics label and part of its users'
// stored identities, so it is kept plain. (This is the one rule: the Caddy
// adapter calls it.)
func ValidProviderName(n string) bool {
	if n == "" || len(n) > 32 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func validLogo(s string) bool {
	if strings.HasPrefix(s, "data:image/") {
		return !strings.ContainsAny(s, "\"'<> ")
	}
	if strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.Contains(s, "\\") {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil
}

// validDomain accepts a DNS name of at least two labels.
func validDomain(d string) bool {
	if len(d) < 3 || len(d) > 253 || !strings.Contains(d, ".") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// remoteIP is the default ClientIP: the host of r.RemoteAddr.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// normalizeEmail lower-cases and validates an email address. It accepts a
// bare addr-spec only (no display name, no angle brackets).
func normalizeEmail(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 254 || strings.ContainsAny(s, " <>\"\\,;\r\n\t") {
		return "", false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return "", false
	}
	local, domain, ok := strings.Cut(strings.ToLower(s), "@")
	if !ok || local == "" || !validDomain(domain) {
		return "", false
	}
	return local + "@" + domain, true
}

func emailDomain(email string) string {
	_, d, _ := strings.Cut(email, "@")
	return d
}
