package idp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Provider is an upstream identity provider (OpenID Connect, SAML) shown as
// a button on the login page: its record (UpstreamInfo, usually an embedded
// Upstream) and its Flow. The idp owns the routes under
// {prefix}/login/{Name()}/: a POST to that path (CSRF-checked) creates an
// Attempt and calls Begin; every other request under it goes to the handler
// returned by Handler (callbacks, SAML ACS and metadata).
type Provider interface {
	UpstreamInfo
	Flow
}

// UpstreamInfo is what the login page and account linking read of a
// provider. Upstream implements it from an UpstreamConfig.
type UpstreamInfo interface {
	// Name is the provider's stable id (ValidProviderName). It appears in
	// URLs and in linked identities; changing it orphans existing links.
	Name() string
	// Kind is the registered kind's name ("oidc", "saml", Kind.Name); the
	// session's method is Kind()+":"+Name().
	Kind() string
	// DisplayName is the button label ("Sign in with " is prepended).
	DisplayName() string
	// IconURL is an optional https or data:image URL shown on the button.
	IconURL() string
	// Policy says how upstream identities become local accounts.
	Policy() UpstreamPolicy
}

// Flow is the protocol half of a provider: the round trip to the upstream.
type Flow interface {
	// Begin starts the upstream flow for an attempt, typically by binding
	// state to this browser (BrowserBinding) and redirecting (303) to the
	// upstream. An error is shown to the user as a generic failure.
	Begin(w http.ResponseWriter, r *http.Request, a Attempt) error
	// Handler serves the provider's routes under Attempt.BaseURL. It is
	// called once by New. When the upstream answer has been verified
	// (signature, issuer, audience, state/nonce or request id, browser
	// binding), it calls c.CompleteUpstream; on failure c.FailUpstream.
	Handler(c Completer) http.Handler
}

// Attempt is one upstream login attempt. Its ID is a single-use random
// value; the provider carries it through the upstream round trip (in its own
// browser-bound state) and hands it back to CompleteUpstream.
type Attempt struct {
	ID       string `json:"-"`
	Provider string `json:"provider"`
	// ReturnTo is where the browser goes once signed in (a safe relative path).
	ReturnTo string `json:"return_to"`
	// LoginHint is the email the user typed or the client's login_hint.
	LoginHint string    `json:"login_hint,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Binding is the SHA-256 of the browser's pre-session CSRF cookie when
	// the attempt started (defence in depth; providers bind their own state
	// to the browser too, since a cross-site POST such as a SAML response
	// does not carry SameSite=Lax cookies).
	Binding []byte `json:"binding,omitempty"`
	// BaseURL is the absolute URL of the provider's routes
	// ({public origin}{prefix}/login/{name}), without a trailing slash.
	BaseURL string `json:"-"`
}

// ExternalIdentity is what a provider verified about the user.
type ExternalIdentity struct {
	// Provider is the provider's Name().
	Provider string
	// Subject is the upstream's stable user id (OIDC sub, SAML NameID).
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
}

// UpstreamPolicy controls account linking and who may sign in through a
// provider. With every allow list empty, everyone the provider vouches for
// is allowed; otherwise a user is allowed when any list matches.
type UpstreamPolicy struct {
	// LinkByEmail links a first-time upstream identity to an existing local
	// account with the same email, only when the provider asserts the email
	// is verified. Off by default: a provider that lets users choose their
	// email could otherwise take over local accounts.
	LinkByEmail bool
	// NoAccountCreation refuses upstream identities that are not linked yet
	// (instead of creating an account for them).
	NoAccountCreation bool
	// AllowedDomains admits users whose verified email is in one of these domains.
	AllowedDomains []string
	// AllowedGroups admits users in any of these groups.
	AllowedGroups []string
	// AllowedSubjects admits these upstream subjects.
	AllowedSubjects []string
}

// Completer finishes upstream logins; *Login implements it.
type Completer interface {
	// CompleteUpstream signs the browser in with a verified upstream
	// identity and redirects to the attempt's return path, or shows the
	// "not allowed" or error page. The attempt is consumed either way.
	CompleteUpstream(w http.ResponseWriter, r *http.Request, attemptID string, ext ExternalIdentity)
	// FailUpstream records a failed upstream login (reason is a short code
	// such as "state_mismatch"; never a token) and shows the error page.
	FailUpstream(w http.ResponseWriter, r *http.Request, attemptID, reason string)
	// Error shows the hosted login's error page (an unknown path or method
	// under the provider's routes).
	Error(w http.ResponseWriter, r *http.Request, status int, code, description string)
}

const (
	ticketAttempt = "idp.attempt"
	attemptTTL    = 15 * time.Minute
)

// ProviderBaseURL is the absolute URL under which the idp serves a
// provider's routes, e.g. https://auth.example.com/login/google. OIDC
// redirect URIs and SAML ACS URLs are built from it.
func ProviderBaseURL(publicURL, pathPrefix, name string) string {
	return originOf(publicURL) + pathPrefix + "/login/" + name
}

// newAttempt stores an attempt and returns it with its id.
func (l *Login) newAttempt(ctx context.Context, p Provider, returnTo, hint string, binding []byte) (Attempt, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Attempt{}, fmt.Errorf("idp: attempt id: %w", err)
	}
	now := l.now()
	a := Attempt{
		ID:        b64url.EncodeToString(raw),
		Provider:  p.Name(),
		ReturnTo:  SafeReturnTo(returnTo),
		LoginHint: hint,
		CreatedAt: now,
		ExpiresAt: now.Add(attemptTTL),
		BaseURL:   ProviderBaseURL(l.cfg.PublicURL, l.cfg.PathPrefix, p.Name()),
		Binding:   binding,
	}
	v, err := json.Marshal(a)
	if err != nil {
		return Attempt{}, fmt.Errorf("idp: attempt: %w", err)
	}
	if err := l.store.PutTicket(ctx, storage.Ticket{Kind: ticketAttempt, Hash: hashID(raw), Value: v, ExpiresAt: a.ExpiresAt}); err != nil {
		return Attempt{}, fmt.Errorf("idp: storing attempt: %w", err)
	}
	return a, nil
}

// takeAttempt consumes an attempt.
func (l *Login) takeAttempt(ctx context.Context, id string) (Attempt, error) {
	raw, err := b64url.DecodeString(id)
	if err != nil || len(raw) != 32 {
		return Attempt{}, storage.ErrNotFound
	}
	t, err := l.store.TakeTicket(ctx, ticketAttempt, hashID(raw), l.now())
	if err != nil {
		return Attempt{}, err
	}
	var a Attempt
	if err := json.Unmarshal(t.Value, &a); err != nil {
		return Attempt{}, fmt.Errorf("idp: attempt record: %w", err)
	}
	a.ID = id
	a.BaseURL = ProviderBaseURL(l.cfg.PublicURL, l.cfg.PathPrefix, a.Provider)
	return a, nil
}

// FailUpstream consumes the attempt (if any), audits the failure and shows
// the error page.
func (l *Login) FailUpstream(w http.ResponseWriter, r *http.Request, attemptID, reason string) {
	a, _ := l.takeAttempt(r.Context(), attemptID)
	l.refused(r, storage.AuditEvent{Type: audit.LoginFailure, Outcome: "failure", Detail: map[string]string{
		"reason": reasonCode(reason), "method": "upstream", "provider": a.Provider,
	}})
	if unreachableReasons[reason] {
		l.upstreamUnreachable(w, r, l.providers[a.Provider])
		return
	}
	l.Error(w, r, http.StatusBadRequest, "login_failed", "Sign-in with your identity provider could not be completed. Please try again.")
}

// unreachableReasons are the FailUpstream reasons that mean the upstream
// did not answer (network error, timeout, 5xx): the page names the provider
// instead of blaming the user or us.
var unreachableReasons = map[string]bool{
	ReasonDiscoveryFailed:          true,
	ReasonTokenEndpointUnreachable: true,
	ReasonMetadataUnavailable:      true,
}

// FailUpstream reasons that mean the upstream could not be reached.
const (
	// ReasonDiscoveryFailed: the OpenID provider's discovery document or
	// keys could not be fetched.
	ReasonDiscoveryFailed = "discovery_failed"
	// ReasonTokenEndpointUnreachable: the token request got no OAuth answer.
	ReasonTokenEndpointUnreachable = "token_endpoint_unreachable"
	// ReasonMetadataUnavailable: the SAML IdP's metadata could not be loaded.
	ReasonMetadataUnavailable = "metadata_unavailable"
)

// upstreamUnreachable shows the 502 page that names the provider (p may be
// nil when the attempt is gone).
func (l *Login) upstreamUnreachable(w http.ResponseWriter, r *http.Request, p Provider) {
	name := "your identity provider"
	if p != nil {
		name = p.DisplayName() + " (" + p.Name() + ")"
	}
	l.errorPage(w, r, http.StatusBadGateway, "upstream_unavailable", "We could not reach "+name,
		"We could not reach "+name+" right now; try again in a minute. If this keeps happening, tell your administrator.")
}

// upstreamRefused logs a refused upstream login at info level: the
// provider and the reason code, never the identity's token or assertion.
func (l *Login) upstreamRefused(provider, reason string) {
	l.log.Info("idp: upstream login refused", "provider", provider, "reason", reason)
}

// reasonCode keeps audit reason codes short and free of attacker text.
func reasonCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.ToLower(s))
}

var errNotAllowed = errors.New("idp: upstream identity not allowed")

// CompleteUpstream implements Completer.
func (l *Login) CompleteUpstream(w http.ResponseWriter, r *http.Request, attemptID string, ext ExternalIdentity) {
	ctx := r.Context()
	a, err := l.takeAttempt(ctx, attemptID)
	if err != nil {
		l.refused(r, storage.AuditEvent{Type: audit.LoginFailure, Outcome: "failure", Detail: map[string]string{"reason": "attempt_unknown", "provider": ext.Provider}})
		l.upstreamRefused(ext.Provider, "attempt_unknown")
		l.Error(w, r, http.StatusBadRequest, "login_expired", "This sign-in attempt has expired or was already used. Please start again.")
		return
	}
	if !l.sameBrowser(r, a) {
		l.refused(r, storage.AuditEvent{Type: audit.LoginFailure, Outcome: "failure", Detail: map[string]string{"reason": "browser_mismatch", "provider": a.Provider}})
		l.upstreamRefused(a.Provider, "browser_mismatch")
		l.Error(w, r, http.StatusBadRequest, "login_failed", "This sign-in was started in another browser. Please start again here.")
		return
	}
	p := l.providers[a.Provider]
	if p == nil || ext.Provider != a.Provider || ext.Subject == "" {
		l.refused(r, storage.AuditEvent{Type: audit.LoginFailure, Outcome: "failure", Detail: map[string]string{"reason": "attempt_mismatch", "provider": a.Provider}})
		l.upstreamRefused(a.Provider, "attempt_mismatch")
		l.Error(w, r, http.StatusBadRequest, "login_failed", "Sign-in with your identity provider could not be completed. Please try again.")
		return
	}
	method := p.Kind() + ":" + p.Name()
	// The account this browser is signed in to, if any: linking by email
	// into an account whose email nobody verified needs it (requirement 35).
	var signedIn string
	if s, ok := l.currentSession(r); ok {
		signedIn = s.AccountID
	}
	acct, reason, err := l.linkUpstream(ctx, p.Policy(), ext, signedIn)
	if err != nil {
		detail := map[string]string{"reason": reason, "method": method}
		l.audit(r, storage.AuditEvent{Type: audit.LoginFailure, Outcome: "failure", Subject: acct.ID, Detail: detail})
		if reason != "store_error" {
			l.upstreamRefused(p.Name(), reason)
		}
		switch {
		case errors.Is(err, errNotAllowed):
			l.notAllowed(w, r, ext)
		case reason == "email_taken":
			l.Error(w, r, http.StatusConflict, "account_exists",
				"An account with this email address already exists. Sign in the way you signed in before, or ask your administrator to link your accounts.")
		case reason == "email_unverified":
			l.Error(w, r, http.StatusConflict, "account_exists",
				"An account with this email address already exists. Sign in with it first (with its password), then use this sign-in option again to link it.")
		default:
			if reason == "store_error" {
				l.log.Error("idp: upstream login failed", "provider", p.Name(), "error", err)
				l.Error(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "Sign-in is temporarily unavailable. Please try again in a moment.")
				return
			}
			l.Error(w, r, http.StatusForbidden, "access_denied", "This account cannot sign in.")
		}
		return
	}
	if err := l.startSession(w, r, acct.ID, method,
		storage.AuditEvent{Type: audit.LoginSuccess, Outcome: "success", Subject: acct.ID, Detail: map[string]string{"method": method}}); err != nil {
		l.log.Error("idp: starting session failed", "error", err)
		l.Error(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "Sign-in is temporarily unavailable. Please try again in a moment.")
		return
	}
	l.redirect(w, r, a.ReturnTo)
}

// sameBrowser reports whether the request may complete the attempt: when
// the browser sends a pre-session cookie, it must be the one that started
// the attempt. A request without it (a cross-site POST) is left to the
// provider's own browser binding.
func (l *Login) sameBrowser(r *http.Request, a Attempt) bool {
	if len(a.Binding) == 0 {
		return true
	}
	c, err := r.Cookie(l.csrfCookie)
	if err != nil {
		return true
	}
	k, err := b64url.DecodeString(c.Value)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(hashID(k), a.Binding) == 1
}

// allowed applies the policy's allow rules.
func allowed(pol UpstreamPolicy, ext ExternalIdentity) bool {
	if len(pol.AllowedDomains) == 0 && len(pol.AllowedGroups) == 0 && len(pol.AllowedSubjects) == 0 {
		return true
	}
	if slices.Contains(pol.AllowedSubjects, ext.Subject) {
		return true
	}
	for _, g := range ext.Groups {
		if slices.Contains(pol.AllowedGroups, g) {
			return true
		}
	}
	if email, ok := normalizeEmail(ext.Email); ok && ext.EmailVerified {
		d := emailDomain(email)
		for _, ad := range pol.AllowedDomains {
			if strings.EqualFold(d, ad) {
				return true
			}
		}
	}
	return false
}

// linkUpstream finds or creates the local account of an upstream identity:
// by (provider, subject) first; else, when the policy allows it and the
// provider asserts the email is verified, the account with that email (and
// links it); else a new account. Linking by email goes only into an account
// whose own email is verified (operator seed, verification mail, a provider
// that asserted it) or into the account signedIn, the one this browser is
// signed in to: a self-signup account that nobody verified may belong to
// someone who typed the victim's address (requirement 35). A link ends the
// account's other sessions. reason is an audit code when err is not nil.
func (l *Login) linkUpstream(ctx context.Context, pol UpstreamPolicy, ext ExternalIdentity, signedIn string) (storage.Account, string, error) {
	if !allowed(pol, ext) {
		return storage.Account{}, "not_allowed", errNotAllowed
	}
	email, emailOK := normalizeEmail(ext.Email)
	acct, err := l.store.AccountByIdentity(ctx, ext.Provider, ext.Subject)
	switch {
	case err == nil:
		if acct.Disabled {
			return acct, "disabled", errors.New("idp: account disabled")
		}
		// Keep name and groups in step with the upstream; the email is
		// not changed here (it is the unique login name of the account).
		if acct.Name != ext.Name && ext.Name != "" || !slices.Equal(acct.Groups, ext.Groups) {
			acct.Name = cmpOr(ext.Name, acct.Name)
			acct.Groups = slices.Clone(ext.Groups)
			acct.UpdatedAt = l.now()
			if err := l.store.UpdateAccount(ctx, acct); err != nil {
				l.log.Warn("idp: updating upstream account failed", "error", err)
			}
		}
		return acct, "", nil
	case !errors.Is(err, storage.ErrNotFound):
		return storage.Account{}, "store_error", err
	}
	if emailOK {
		existing, err := l.store.GetAccountByEmail(ctx, email)
		switch {
		case err == nil:
			if !pol.LinkByEmail || !ext.EmailVerified {
				return storage.Account{}, "email_taken", errors.New("idp: email belongs to an unlinked account")
			}
			by := "verified_email"
			if !existing.EmailVerified {
				if signedIn != existing.ID {
					return existing, "email_unverified", errors.New("idp: email belongs to an account whose email is not verified")
				}
				by = "signed_in"
			}
			if existing.Disabled {
				return existing, "disabled", errors.New("idp: account disabled")
			}
			if err := l.store.LinkIdentity(ctx, ext.Provider, ext.Subject, existing.ID); err != nil {
				return storage.Account{}, "store_error", err
			}
			if !existing.EmailVerified {
				// The provider vouches for the address and the browser
				// proved it holds the account: the email is verified now.
				existing.EmailVerified, existing.UpdatedAt = true, l.now()
				if err := l.store.UpdateAccount(ctx, existing); err != nil {
					l.log.Warn("idp: marking linked email verified failed", "error", err)
				}
			}
			// A new way into the account: whoever else was signed in to it
			// is signed out (the caller starts this browser's session).
			if _, err := l.store.DeleteAccountSessions(ctx, existing.ID); err != nil {
				return storage.Account{}, "store_error", err
			}
			l.auditCtx(ctx, storage.AuditEvent{Type: audit.AccountLinked, Outcome: "success", Subject: existing.ID, Detail: map[string]string{"provider": ext.Provider, "by": by}})
			return existing, "", nil
		case !errors.Is(err, storage.ErrNotFound):
			return storage.Account{}, "store_error", err
		}
	}
	if pol.NoAccountCreation {
		return storage.Account{}, "not_provisioned", errNotAllowed
	}
	now := l.now()
	acct = storage.Account{
		ID:            newAccountID(),
		Name:          ext.Name,
		EmailVerified: emailOK && ext.EmailVerified,
		Groups:        slices.Clone(ext.Groups),
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	if emailOK {
		acct.Email = email
	}
	if err := l.store.CreateAccount(ctx, acct); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return storage.Account{}, "email_taken", err
		}
		return storage.Account{}, "store_error", err
	}
	if err := l.store.LinkIdentity(ctx, ext.Provider, ext.Subject, acct.ID); err != nil {
		// Lost a race with a concurrent first login of the same identity:
		// use the account that won.
		if errors.Is(err, storage.ErrAlreadyExists) {
			if won, err2 := l.store.AccountByIdentity(ctx, ext.Provider, ext.Subject); err2 == nil {
				return won, "", nil
			}
		}
		return storage.Account{}, "store_error", err
	}
	l.auditCtx(ctx, storage.AuditEvent{Type: audit.AccountCreated, Outcome: "success", Subject: acct.ID, Detail: map[string]string{"provider": ext.Provider, "by": "upstream"}})
	return acct, "", nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// newAccountID returns a random, opaque, stable account id (the token
// subject): 128 bits, base32-like lower-case.
func newAccountID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var sb strings.Builder
	sb.WriteString("u_")
	var acc uint32
	bits := 0
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			sb.WriteByte(alphabet[(acc>>(bits-5))&31])
			bits -= 5
		}
	}
	if bits > 0 {
		sb.WriteByte(alphabet[(acc<<(5-bits))&31])
	}
	return sb.String()
}

// ErrNotProvisioned is returned by ResolveIdentity for an identity that has
// no account and may not get one (or whose email belongs to an account it
// may not be linked to, or whose account is disabled).
var ErrNotProvisioned = errors.New("idp: identity has no usable account")

// ResolveIdentity finds or creates the local account of an identity
// verified elsewhere than in a browser (an enterprise IdP's ID-JAG at the
// token endpoint), with the same rules as an upstream login: by (provider,
// subject), else by verified email when pol.LinkByEmail, else a new
// account unless pol.NoAccountCreation. It returns the account id (the
// token subject); ErrNotProvisioned when the policy refuses, or a store
// error. The outcome is audited like an upstream login's.
func (l *Login) ResolveIdentity(ctx context.Context, pol UpstreamPolicy, ext ExternalIdentity) (string, error) {
	acct, reason, err := l.linkUpstream(ctx, pol, ext, "")
	if err == nil {
		return acct.ID, nil
	}
	if reason == "store_error" {
		return "", err
	}
	l.auditCtx(ctx, storage.AuditEvent{Type: audit.AccountRefused, Outcome: reason, Subject: acct.ID, Detail: map[string]string{"provider": ext.Provider}})
	return "", fmt.Errorf("%w (%s)", ErrNotProvisioned, reason)
}
