package idp

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/idp/password"
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Login is the hosted login. It implements authserver.Browser and serves
// its own pages as an http.Handler (see Handles for the routes).
type Login struct {
	cfg       Config
	store     Store
	log       *slog.Logger
	now       func() time.Time
	hasher    PasswordHasher
	origin    string // scheme://host[:port] of PublicURL
	secure    bool
	brand     brandView
	tmpl      map[string]*template.Template
	providers map[string]Provider
	order     []Provider
	handlers  map[string]http.Handler
	pairs     *throttle // (account, client prefix): lock
	ips       *throttle // client prefix: lock
	accounts  *throttle // account: back-off
	familiar  *familiar // (account, client prefix) that signed in: no back-off
	signups   *throttle // client prefix
	prefixes  abuse.Prefixes
	mailWG    sync.WaitGroup

	sessionCookie, csrfCookie string
	loginPath, signupPath     string
	logoutPath, providerRoot  string
	verifyPath, resendPath    string
	accountPath               string
}

// Interface guards.
var (
	_ authserver.Browser       = (*Login)(nil)
	_ http.Handler             = (*Login)(nil)
	_ Completer                = (*Login)(nil)
	_ authserver.EmailVerifier = (*Login)(nil)
)

// Cookie names. Over https they carry the __Host- prefix (Secure, Path=/,
// no Domain); on a loopback http issuer (development) the prefix and Secure
// are dropped because browsers refuse them there.
const (
	SessionCookie = "__Host-mcpauth_session"
	CSRFCookie    = "__Host-mcpauth_csrf"
)

// New validates cfg, parses the templates, seeds the configured accounts and
// returns the hosted login.
func New(ctx context.Context, cfg Config) (*Login, error) {
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	l := &Login{
		cfg:       cfg,
		store:     cfg.Store,
		log:       cfg.Logger,
		now:       cfg.Now,
		hasher:    cfg.PasswordHasher,
		origin:    u.Scheme + "://" + u.Host,
		secure:    u.Scheme == "https",
		brand:     brandViewOf(cfg.Branding),
		providers: map[string]Provider{},
		handlers:  map[string]http.Handler{},
		pairs:     newThrottle(cfg.Throttle.Window, cfg.Throttle.Lockout, cfg.Throttle.MaxLockout),
		ips:       newThrottle(cfg.Throttle.Window, cfg.Throttle.Lockout, cfg.Throttle.MaxLockout),
		accounts:  newThrottle(cfg.Throttle.Window, cfg.Throttle.Backoff, cfg.Throttle.MaxBackoff),
		signups:   newThrottle(cfg.Throttle.Window, cfg.Throttle.Window, cfg.Throttle.MaxLockout),
		familiar:  newFamiliar(),
		prefixes:  abuse.Prefixes{IPv4: cfg.Throttle.IPv4Prefix, IPv6: cfg.Throttle.IPv6Prefix},
	}
	th := cfg.Throttle
	l.pairs.share(cfg.SharedLimits, "login_pair", th.AccountFailures, cfg.Now, cfg.Logger)
	l.ips.share(cfg.SharedLimits, "login_ip", th.IPFailures, cfg.Now, cfg.Logger)
	l.accounts.share(cfg.SharedLimits, "login_account", th.BackoffAfter, cfg.Now, cfg.Logger)
	l.signups.share(cfg.SharedLimits, "signup", th.SignupsPerIP, cfg.Now, cfg.Logger)
	if l.hasher == nil {
		l.hasher = password.Default()
	}
	l.sessionCookie, l.csrfCookie = SessionCookie, CSRFCookie
	if !l.secure {
		l.sessionCookie, l.csrfCookie = strings.TrimPrefix(SessionCookie, "__Host-"), strings.TrimPrefix(CSRFCookie, "__Host-")
		l.log.Warn("idp: public URL is http: cookies are not Secure (development only)", "public_url", cfg.PublicURL)
	}
	p := cfg.PathPrefix
	l.loginPath, l.signupPath, l.logoutPath, l.providerRoot = p+"/login", p+"/signup", p+"/logout", p+"/login/"
	l.verifyPath, l.resendPath = p+"/verify-email", p+"/verify-email/resend"
	l.accountPath = p + "/account"
	for _, pr := range cfg.Providers {
		l.providers[pr.Name()] = pr
		l.order = append(l.order, pr)
		l.handlers[pr.Name()] = pr.Handler(l)
	}
	l.tmpl, err = loadTemplates(cfg.TemplatesDir, view{Lang: cfg.Language, Nonce: "n", Brand: l.brand, CSRF: "t"})
	if err != nil {
		return nil, err
	}
	if err := l.seed(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// originOf returns scheme://host of an absolute URL.
func originOf(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Handles reports whether r is for one of the hosted login's own routes:
// {prefix}/login, {prefix}/signup, {prefix}/logout, {prefix}/verify-email
// (and /resend), {prefix}/account and everything under {prefix}/login/.
func (l *Login) Handles(r *http.Request) bool {
	p := r.URL.Path
	return p == l.loginPath || p == l.accountPath || p == l.signupPath || p == l.logoutPath || p == l.verifyPath || p == l.resendPath || strings.HasPrefix(p, l.providerRoot)
}

// ServeHTTP serves the hosted login's routes:
//
//	GET  {prefix}/login               login page (return_to=<safe path>)
//	POST {prefix}/login               email step / password sign-in
//	GET  {prefix}/signup              signup page (when signup is on)
//	POST {prefix}/signup              create a password account
//	GET  {prefix}/verify-email        email confirmation form (token=…, with a mailer)
//	POST {prefix}/verify-email        confirm the email with the signup's password
//	POST {prefix}/verify-email/resend mail a new link to the signed-in account
//	GET  {prefix}/logout              sign-out confirmation
//	POST {prefix}/logout              sign out
//	GET  {prefix}/account             the account page (POST: disconnect an app)
//	POST {prefix}/login/{provider}    start an upstream login
//	*    {prefix}/login/{provider}/…  the provider's own routes (callbacks)
func (l *Login) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == l.loginPath:
		l.serveLogin(w, r)
	case p == l.signupPath:
		l.serveSignup(w, r)
	case p == l.logoutPath:
		l.serveLogout(w, r)
	case p == l.verifyPath:
		l.serveVerify(w, r)
	case p == l.resendPath:
		l.serveResend(w, r)
	case p == l.accountPath:
		l.serveAccount(w, r)
	case strings.HasPrefix(p, l.providerRoot):
		rest := p[len(l.providerRoot):]
		name, sub, _ := strings.Cut(rest, "/")
		pr := l.providers[name]
		if pr == nil {
			l.Error(w, r, http.StatusNotFound, "not_found", "This page does not exist.")
			return
		}
		if sub == "" && !strings.HasSuffix(rest, "/") {
			l.startProvider(w, r, pr)
			return
		}
		l.handlers[name].ServeHTTP(w, r)
	default:
		l.Error(w, r, http.StatusNotFound, "not_found", "This page does not exist.")
	}
}

func methodNotAllowed(l *Login, w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	l.Error(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "This request method is not supported here.")
}

// redirect sends a 303 to a same-origin path; a sign-in with nowhere to
// return to lands on the account page, not on the site's root.
func (l *Login) redirect(w http.ResponseWriter, r *http.Request, path string) {
	l.securityHeaders(w, newNonce(), true)
	to := SafeReturnTo(path)
	if to == "/" {
		to = l.accountPath
	}
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusSeeOther)
}

// limitBody bounds form bodies.
func limitBody(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("idp: form: %w", err)
	}
	return nil
}

// checkPost parses the form and verifies CSRF; on failure it writes the
// error page and returns false.
func (l *Login) checkPost(w http.ResponseWriter, r *http.Request) bool {
	if err := limitBody(w, r); err != nil {
		l.Error(w, r, http.StatusBadRequest, "invalid_request", "The form could not be read.")
		return false
	}
	if err := l.VerifyCSRF(r); err != nil {
		l.refused(r, storage.AuditEvent{Type: audit.CSRFFailure, Outcome: "failure", Detail: map[string]string{"path": r.URL.Path, "reason": csrfReason(err)}})
		l.Error(w, r, http.StatusForbidden, "csrf_failed", "This form has expired or was not sent from this site. Go back, reload the page and try again.")
		return false
	}
	return true
}

func csrfReason(err error) string {
	switch {
	case errors.Is(err, errCSRFMissing):
		return "missing"
	case errors.Is(err, errCSRFOrigin):
		return "origin"
	default:
		return "invalid"
	}
}

// clientName returns a display name posted back by our own login form,
// bounded and cleaned (the form is CSRF-protected; the value is only shown).
func clientName(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 100 {
		s = s[:100]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
