package authserver

import (
	"net/http"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Identity is the user signed in on a browser, as the hosted login reports it.
type Identity struct {
	// Subject is the stable account id; it becomes the token's "sub".
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
	// AuthTime is when the user last authenticated (for max_age and prompt=login).
	AuthTime time.Time
	// Method is how they signed in: "password", "oidc:<name>", "saml:<name>".
	Method string
	// MustVerifyEmail holds back every grant until the user has verified
	// their email (a self-signup account while signup verification mails
	// are configured): the authorization endpoint shows the browser's
	// "verify your email" page instead of consent or a code.
	MustVerifyEmail bool
}

// LoginRequest tells the hosted login why the user is asked to sign in.
type LoginRequest struct {
	// ReturnTo is the same-origin path (with query) to come back to once
	// signed in: the /authorize request being served.
	ReturnTo string
	// Client is shown on the page ("Sign in to continue to …").
	Client storage.Client
	// LoginHint is the request's login_hint, if any (used for home-realm discovery).
	LoginHint string
	// ForceLogin is set for prompt=login or an exceeded max_age: an existing
	// session must authenticate again.
	ForceLogin bool
}

// ConsentPage is what the consent page shows and posts back.
type ConsentPage struct {
	Client       storage.Client
	ClientIDHost string   // host of a CIMD client_id URL; empty for others
	RedirectHost string   // host (or scheme for private-use schemes) of the redirect URI
	Scopes       []string // requested scopes, resolved
	Resource     string   // the resource the token will be bound to
	// LoopbackOnly warns that every redirect URI of the client is on this
	// machine (a typical phishing shape for public clients).
	LoopbackOnly bool
	// NoRemember hides the "remember this decision" choice: the client's
	// policy keeps no consent (remember_consent off).
	NoRemember bool
	// Action is the URL the form POSTs to (the /authorize request, query kept).
	Action string
	// User is who is consenting.
	User Identity
	// Tools lists, per requested scope, the tools of the resource it
	// unlocks (from the resource's tool map; empty without one), marking
	// those the user has not approved before.
	Tools []ScopeTools
	// StepUp marks the step-up page: the user widens an existing grant of
	// the client; nothing is redirected, the client picks the wider grant up
	// at its next refresh.
	StepUp bool
	// NewScopes are the scopes the step-up adds to the grant.
	NewScopes []string
}

// EmailVerifier is implemented by a Browser that can hold a sign-in back
// until the email is verified (Identity.MustVerifyEmail).
type EmailVerifier interface {
	// VerifyEmail writes the "verify your email" page; req.ReturnTo resumes
	// the authorization request once the email is verified.
	VerifyEmail(w http.ResponseWriter, r *http.Request, req LoginRequest)
}

// Browser is the browser side of the authorization endpoint: who is signed
// in, the login and consent pages, CSRF and the error page. The idp package
// implements it; the authorization server never renders HTML itself.
type Browser interface {
	// Identify returns the identity signed in on this browser, if any.
	Identify(r *http.Request) (Identity, bool)
	// Login sends the browser to sign in (a 303 to the login page, or the
	// page itself) and back to req.ReturnTo afterwards.
	Login(w http.ResponseWriter, r *http.Request, req LoginRequest)
	// Consent writes the consent page. Its form POSTs to page.Action with a
	// CSRF token and a field "decision" of "approve" or "deny" (and
	// "remember"="on" to remember the decision).
	Consent(w http.ResponseWriter, r *http.Request, page ConsentPage)
	// VerifyCSRF checks the CSRF token of a POST made from one of its pages.
	VerifyCSRF(r *http.Request) error
	// Error writes an error page for an error that must not be redirected
	// (bad client_id or redirect_uri, pre-login errors of third-party clients).
	Error(w http.ResponseWriter, r *http.Request, status int, code, description string)
}
