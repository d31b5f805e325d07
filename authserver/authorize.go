package authserver

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// maxAuthorizeURL caps the path and query of an authorization request: it
// must survive the round trip through the hosted login as ReturnTo, which
// the login caps at 4 KiB.
const maxAuthorizeURL = 4096

// authzRequest is a validated authorization request (OAuth 2.1 §4.1.1).
type authzRequest struct {
	client      storage.Client
	redirectURI string // the requested URI, which matched a registered one
	state       string
	challenge   string
	scopes      []string
	resource    string
	prompt      map[string]bool
	maxAge      time.Duration // <0: none
	loginHint   string
	rawQuery    string
	query       url.Values
}

// authzFailure is how serveAuthorize answers an invalid request.
type authzFailure struct {
	err  *oauth.Error
	page bool // show on an error page, never redirect
}

// setAuthorizeHeaders protects every /authorize answer: no caching, no
// framing (clickjacking of the consent page), no referrer (the URL carries
// state, the redirect carries the code).
func setAuthorizeHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

// serveAuthorize is the authorization endpoint: GET starts or resumes a
// request, POST is the consent form posting back to the same URL.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	setAuthorizeHeaders(w)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.authorizeFailed(w, r, nil, &authzFailure{page: true, err: &oauth.Error{Code: oauth.CodeInvalidRequest, Description: "method not allowed",
			Status: http.StatusMethodNotAllowed, Reason: oauth.ReasonRequestMalformed}})
		return
	}
	id, signedIn := s.cfg.Browser.Identify(r)
	if id.Subject == "" {
		signedIn = false
	}
	ar, fail := s.validateAuthorize(r, signedIn)
	// Requirement 42: until the user has consented to a third-party client,
	// no refusal sends the browser to its redirect URI (owned clients keep
	// the redirect: the operator vouches for them).
	refuse := func(f *authzFailure) {
		if !f.page && thirdParty(ar.client) && !s.consentedBefore(r, ar.client, id.Subject) {
			f.page = true
		}
		s.authorizeFailed(w, r, ar, f)
	}
	if fail != nil {
		refuse(fail)
		return
	}

	// Sign-in (prompt, max_age: OpenID Connect Core §3.1.2.1).
	now := s.cfg.Now()
	if !signedIn {
		if ar.prompt["none"] {
			refuse(&authzFailure{err: oauth.ErrLoginRequired("the user is not signed in").Because(oauth.ReasonLoginRequired)})
			return
		}
		s.cfg.Browser.Login(w, r, LoginRequest{ReturnTo: s.returnTo(ar, false), Client: ar.client, LoginHint: ar.loginHint})
		return
	}
	tooOld := ar.maxAge >= 0 && (id.AuthTime.IsZero() || now.Sub(id.AuthTime) > ar.maxAge)
	if r.Method == http.MethodGet && (ar.prompt["login"] || tooOld) {
		if ar.prompt["none"] {
			refuse(&authzFailure{err: oauth.ErrLoginRequired("a fresh sign-in is required").Because(oauth.ReasonLoginRequired)})
			return
		}
		s.cfg.Browser.Login(w, r, LoginRequest{ReturnTo: s.returnTo(ar, true), Client: ar.client, LoginHint: ar.loginHint, ForceLogin: true})
		return
	}

	if id.MustVerifyEmail {
		// No grant for an address nobody verified (requirement 36).
		if ar.prompt["none"] {
			s.authorizeFailed(w, r, ar, &authzFailure{err: oauth.ErrInteractionRequired("the user must verify their email").Because(oauth.ReasonEmailUnverified)})
			return
		}
		if v, ok := s.cfg.Browser.(EmailVerifier); ok {
			v.VerifyEmail(w, r, LoginRequest{ReturnTo: s.returnTo(ar, false), Client: ar.client, LoginHint: ar.loginHint})
			return
		}
		s.authorizeFailed(w, r, ar, &authzFailure{page: true, err: oauth.ErrAccessDenied("verify your email address first").Because(oauth.ReasonEmailUnverified)})
		return
	}
	if r.Method == http.MethodPost {
		s.consentPosted(w, r, ar, id)
		return
	}
	need, err := s.consentNeeded(r, ar, id)
	if err != nil {
		s.cfg.Logger.Error("authserver: consent lookup", "client_id", ar.client.ID, "error", err)
		refuse(&authzFailure{err: oauth.ErrTemporarilyUnavailable("storage unavailable").Because(oauth.ReasonStorageUnavailable)})
		return
	}
	if need && s.reuseConsent(r, ar, id) {
		need = false
	}
	if need {
		if ar.prompt["none"] {
			refuse(&authzFailure{err: oauth.ErrConsentRequired("the user must approve this client").Because(oauth.ReasonConsentRequired)})
			return
		}
		s.cfg.Browser.Consent(w, r, s.consentPage(ar, id, s.approvedTools(r, ar, id)))
		return
	}
	s.issueCode(w, r, ar, id)
}

// validateAuthorize checks the whole request. Failures about client_id and
// redirect_uri are always pages; for third-party clients so is every failure
// before sign-in.
func (s *Server) validateAuthorize(r *http.Request, signedIn bool) (*authzRequest, *authzFailure) {
	ar := &authzRequest{maxAge: -1, prompt: map[string]bool{}, rawQuery: r.URL.RawQuery}
	page := func(e *oauth.Error) (*authzRequest, *authzFailure) { return ar, &authzFailure{err: e, page: true} }
	if len(s.path(pathAuthorize))+1+len(r.URL.RawQuery) > maxAuthorizeURL {
		return page(oauth.ErrInvalidRequest("the request is too large"))
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return page(oauth.ErrInvalidRequest("the request query is malformed"))
	}
	ar.query = q

	// 1. client_id and redirect_uri: never redirected (requirement 4).
	if len(q["client_id"]) != 1 || q.Get("client_id") == "" {
		return page(oauth.ErrInvalidRequest("client_id is missing or repeated").Because(oauth.ReasonClientIDMissing))
	}
	client, err := s.lookupClient(s.requesterContext(r), q.Get("client_id"))
	if err != nil {
		if e, ok := clientUnavailable(err); ok {
			// The client and its redirect URI cannot be checked now: a
			// page, never a redirect.
			return page(e)
		}
		if errors.Is(err, errClientUnknown) {
			return ar, &authzFailure{err: clientLookupError(err), page: true}
		}
		s.cfg.Logger.Error("authserver: authorize client lookup", "error", err)
		return page(oauth.ErrTemporarilyUnavailable("storage unavailable").Because(oauth.ReasonStorageUnavailable))
	}
	if client.Disabled {
		return page(oauth.ErrInvalidClient("").Plain(oauth.ReasonClientDisabled, ""))
	}
	ar.client = client
	if len(q["redirect_uri"]) != 1 || q.Get("redirect_uri") == "" {
		return page(oauth.ErrInvalidRequest("redirect_uri is missing or repeated").Because(oauth.ReasonRedirectURIMissing))
	}
	redirect, ok := oauth.MatchRedirectURI(client.RedirectURIs, q.Get("redirect_uri"))
	if !ok {
		return page(oauth.ErrInvalidRequest("").Plain(oauth.ReasonRedirectURIMismatch, ""))
	}

	// 2. Everything else: redirected, except for third-party clients before
	// sign-in (RFC 9700 §4.11.2).
	pageOnly := thirdParty(client) && !signedIn
	fail := func(e *oauth.Error) (*authzRequest, *authzFailure) { return ar, &authzFailure{err: e, page: pageOnly} }
	if len(q["state"]) > 1 {
		ar.redirectURI = redirect
		return fail(oauth.ErrInvalidRequest("state is repeated"))
	}
	ar.state = q.Get("state")
	ar.redirectURI = redirect
	if len(ar.state) > 2048 {
		ar.state = ""
		return fail(oauth.ErrInvalidRequest("state is too long"))
	}
	for k, v := range q {
		if len(v) > 1 && k != "resource" {
			return fail(oauth.ErrInvalidRequest("parameter " + safeName(k) + " is repeated"))
		}
	}
	switch rt := q.Get("response_type"); rt {
	case "code":
	case "":
		return fail(oauth.ErrInvalidRequest("response_type is required").Because(oauth.ReasonResponseTypeInvalid))
	default:
		return fail(oauth.ErrUnsupportedResponseType("only response_type=code is supported").Because(oauth.ReasonResponseTypeInvalid))
	}
	if m := q.Get("response_mode"); m != "" && m != "query" {
		return fail(oauth.ErrInvalidRequest("only response_mode=query is supported"))
	}
	if q.Has("request") || q.Has("request_uri") {
		return fail(oauth.ErrInvalidRequest("request objects are not supported"))
	}
	if e := ValidCodeChallenge(q.Get("code_challenge"), q.Get("code_challenge_method")); e != nil {
		return fail(e)
	}
	ar.challenge = q.Get("code_challenge")
	scopes, e := s.resolveScopes(q.Get("scope"), client)
	if e != nil {
		return fail(e)
	}
	ar.scopes = scopes
	var resources []string
	for _, v := range q["resource"] {
		if v != "" || len(q["resource"]) > 1 {
			resources = append(resources, v)
		}
	}
	res, e := s.cfg.Resources.Resolve(resources, client)
	if e != nil {
		return fail(e)
	}
	ar.resource = res
	for _, p := range strings.Split(q.Get("prompt"), " ") {
		switch p {
		case "":
		case "none", "login", "consent", "select_account":
			ar.prompt[p] = true
		default:
			return fail(oauth.ErrInvalidRequest("unsupported prompt value"))
		}
	}
	if ar.prompt["none"] && len(ar.prompt) > 1 {
		return fail(oauth.ErrInvalidRequest("prompt=none cannot be combined with other values"))
	}
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			return fail(oauth.ErrInvalidRequest("max_age must be a non-negative integer"))
		}
		ar.maxAge = time.Duration(n) * time.Second
	}
	ar.loginHint = q.Get("login_hint")
	if len(ar.loginHint) > 256 {
		ar.loginHint = ""
	}
	return ar, nil
}

// authorizeFailed answers an invalid or refused request: a page, or a 303 to
// the (validated) redirect URI with error, state and iss.
func (s *Server) authorizeFailed(w http.ResponseWriter, r *http.Request, ar *authzRequest, f *authzFailure) {
	clientID := ""
	if ar != nil {
		clientID = ar.client.ID
		if clientID == "" && ar.query != nil {
			clientID = ar.query.Get("client_id")
		}
	}
	s.refused(r, audit.AuthzRefused, clientID, f.err)
	if f.page || ar == nil || ar.redirectURI == "" {
		if f.err.Code == oauth.CodeInvalidClient && ar != nil && ar.client.ID == "" && s.cfg.Registration != nil && wantsJSON(r) {
			// mcp-remote re-registers when told, in JSON, that its client
			// is not registered (docs/requirements.md, requirement 12 and
			// "Known clients").
			desc := "client " + safeName(ar.query.Get("client_id")) + " is not registered"
			if f.err.Reason != oauth.ReasonClientUnknown {
				desc = f.err.Description
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{
				"error":                 oauth.CodeInvalidClient,
				"error_description":     desc,
				"registration_endpoint": s.endpoint(pathRegister),
			})
			return
		}
		status := f.err.Status
		switch {
		case status >= 500:
		case status == http.StatusMethodNotAllowed || status == http.StatusForbidden:
		default:
			status = http.StatusBadRequest
		}
		setRetryAfter(w, f.err)
		s.cfg.Browser.Error(w, r, status, f.err.Code, f.err.Description)
		return
	}
	RedirectError(w, r, ar.redirectURI, ar.state, s.cfg.Issuer, f.err)
}

func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/html")
}

// safeName keeps a parameter name or id printable and short for a message.
func safeName(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return sanitizeErrorText(s)
}

// resolveScopes parses a scope parameter (RFC 6749 §3.3): each scope must be
// offered by the server and allowed for the client. An empty parameter means
// the client's default scopes, else the server's (those the client may use).
func (s *Server) resolveScopes(raw string, c storage.Client) ([]string, *oauth.Error) {
	var out []string
	for _, sc := range strings.Split(raw, " ") {
		if sc == "" || contains(out, sc) {
			continue
		}
		if !validScopeToken(sc) {
			return nil, oauth.ErrInvalidScope("malformed scope")
		}
		if sc == ScopeOfflineAccess && !allowsGrant(c, oauth.GrantRefreshToken) {
			// A client that may not refresh simply gets no refresh token
			// (OpenID Connect Core §11: the server ignores offline_access it
			// will not honour) rather than a failed sign-in.
			continue
		}
		if !s.scopeAllowed(sc, c) {
			return nil, oauth.ErrInvalidScope("scope " + safeName(sc) + " is not allowed for this client")
		}
		out = append(out, sc)
	}
	if len(out) > 0 {
		return out, nil
	}
	defaults := c.DefaultScopes
	if len(defaults) == 0 {
		defaults = s.cfg.DefaultScopes
	}
	for _, sc := range defaults {
		if s.scopeAllowed(sc, c) && !contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

func (s *Server) scopeAllowed(sc string, c storage.Client) bool {
	if !contains(s.cfg.Scopes, sc) {
		return false
	}
	if sc == ScopeOfflineAccess {
		return allowsGrant(c, oauth.GrantRefreshToken)
	}
	return len(c.Scopes) == 0 || contains(c.Scopes, sc)
}

// returnTo is the same-origin URL the hosted login sends the browser back
// to. After a forced login it drops prompt=login and max_age so the fresh
// sign-in is not asked for again.
func (s *Server) returnTo(ar *authzRequest, forced bool) string {
	if !forced {
		return s.path(pathAuthorize) + "?" + ar.rawQuery
	}
	q := url.Values{}
	for k, v := range ar.query {
		q[k] = v
	}
	q.Del("max_age")
	var keep []string
	for p := range ar.prompt {
		if p != "login" {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		q.Del("prompt")
	} else {
		q.Set("prompt", strings.Join(keep, " "))
	}
	return s.path(pathAuthorize) + "?" + q.Encode()
}

// issueCode mints an authorization code (OAuth 2.1 §4.1.2): 256 random bits,
// stored as SHA-256, bound to client, redirect URI, challenge, user, scopes,
// resource and the grant id its redemption will create; then 303 to the
// client with code, state and iss, each exactly once.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, ar *authzRequest, id Identity) {
	code, err1 := randomToken(32)
	grantID, err2 := randomToken(16)
	if err1 != nil || err2 != nil {
		s.cfg.Logger.Error("authserver: random", "error", errors.Join(err1, err2))
		s.authorizeFailed(w, r, ar, &authzFailure{err: oauth.ErrServerError().Because(oauth.ReasonInternalError)})
		return
	}
	now := s.cfg.Now()
	ac := storage.AuthCode{
		Hash:                hashToken(code),
		ClientID:            ar.client.ID,
		RedirectURI:         ar.redirectURI,
		CodeChallenge:       ar.challenge,
		CodeChallengeMethod: "S256",
		Subject:             id.Subject,
		Scopes:              ar.scopes,
		Resource:            ar.resource,
		AuthTime:            id.AuthTime,
		Tools:               s.toolSnapshot(ar.resource, ar.scopes),
		GrantID:             grantID,
		CreatedAt:           now,
		ExpiresAt:           now.Add(s.cfg.CodeTTL),
	}
	if err := s.store.SaveCode(r.Context(), ac); err != nil {
		s.cfg.Logger.Error("authserver: save code", "client_id", ar.client.ID, "error", err)
		s.authorizeFailed(w, r, ar, &authzFailure{err: oauth.ErrTemporarilyUnavailable("storage unavailable").Because(oauth.ReasonStorageUnavailable)})
		return
	}
	s.emit(r.Context(), r, storage.AuditEvent{Type: audit.CodeIssued, Outcome: "success", Subject: id.Subject, ClientID: ar.client.ID,
		Detail: map[string]string{"grant_id": grantID, "scope": strings.Join(ar.scopes, " "), "resource": ar.resource}})
	params := url.Values{"code": {code}, "iss": {s.cfg.Issuer}}
	if ar.state != "" {
		params.Set("state", ar.state)
	}
	target, ok := appendRedirectQuery(ar.redirectURI, params)
	if !ok {
		s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidRequest, "redirect_uri is not usable")
		return
	}
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}
