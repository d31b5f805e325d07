package idp

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/idp/password"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// User-facing messages. Login failures are deliberately generic.
const (
	msgBadLogin  = "Incorrect email or password."
	msgThrottled = "Too many failed sign-in attempts. Wait a few minutes and try again."
	msgBackoff   = "Too many failed sign-in attempts on this account. Wait a few seconds and try again."
	msgBadEmail  = "Enter a valid email address."
	msgNoMethod  = "There is no password sign-in for this address. Use one of the options below."
	msgSignupOff = "Account creation is not available."
	msgSignupDom = "Accounts can only be created with an address at an allowed domain."
	msgUnavail   = "Sign-in is temporarily unavailable. Please try again in a moment."
)

// Login implements authserver.Browser: it writes the login page itself
// (status 200, at the URL being served, e.g. /authorize?...), so it can name
// the client; the form posts to {prefix}/login and comes back to ReturnTo.
func (l *Login) Login(w http.ResponseWriter, r *http.Request, req authserver.LoginRequest) {
	lv := l.newLoginView(SafeReturnTo(req.ReturnTo), cmpOr(req.Client.Name, req.Client.ID))
	if e, ok := normalizeEmail(req.LoginHint); ok {
		lv.Email = e
	}
	if req.ForceLogin {
		if s, ok := l.currentSession(r); ok {
			lv.Email = s.Account.Email
			lv.Notice = "Please sign in again to continue."
		}
	}
	l.renderLogin(w, r, http.StatusOK, lv)
}

func (l *Login) newLoginView(returnTo, client string) *loginView {
	lv := &loginView{
		Action:        l.loginPath,
		ReturnTo:      returnTo,
		ClientName:    client,
		PasswordLogin: l.cfg.PasswordLogin,
		EmailFirst:    len(l.cfg.HomeRealm) > 0,
	}
	for _, p := range l.order {
		lv.Providers = append(lv.Providers, providerView{Name: p.Name(), DisplayName: p.DisplayName(), IconURL: safeIcon(p.IconURL()), Action: l.providerRoot + p.Name()})
	}
	if l.cfg.Signup.Mode != SignupOff {
		lv.SignupURL = l.signupPath
		if returnTo != "/" {
			lv.SignupURL += "?return_to=" + urlQueryEscape(returnTo)
		}
	}
	return lv
}

func (l *Login) renderLogin(w http.ResponseWriter, r *http.Request, status int, lv *loginView) {
	// Login and signup forms always carry a pre-session token, so a session
	// that expires while the page is open does not spoil the form.
	l.render(w, status, "login.html", view{CSRF: l.preSessionToken(w, r), Login: lv}, newNonce(), false)
}

func (l *Login) serveLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q := r.URL.Query()
		returnTo := SafeReturnTo(q.Get("return_to"))
		if q.Get("prompt") != "login" {
			if _, ok := l.currentSession(r); ok {
				l.redirect(w, r, returnTo)
				return
			}
		}
		lv := l.newLoginView(returnTo, "")
		if e, ok := normalizeEmail(q.Get("login_hint")); ok {
			lv.Email = e
		}
		l.renderLogin(w, r, http.StatusOK, lv)
	case http.MethodPost:
		l.postLogin(w, r)
	default:
		methodNotAllowed(l, w, r, "GET, HEAD, POST")
	}
}

func (l *Login) postLogin(w http.ResponseWriter, r *http.Request) {
	if !l.checkPost(w, r) {
		return
	}
	returnTo := SafeReturnTo(r.PostFormValue("return_to"))
	lv := l.newLoginView(returnTo, clientName(r.PostFormValue("client_name")))
	rawEmail := strings.TrimSpace(r.PostFormValue("email"))
	email, emailOK := normalizeEmail(rawEmail)
	if len(rawEmail) <= 254 {
		lv.Email = rawEmail
	}
	if r.PostFormValue("step") == "email" && lv.EmailFirst {
		if !emailOK {
			lv.Error = msgBadEmail
			l.renderLogin(w, r, http.StatusBadRequest, lv)
			return
		}
		if name, ok := l.cfg.HomeRealm[emailDomain(email)]; ok {
			l.beginUpstream(w, r, l.providers[name], returnTo, email)
			return
		}
		lv.Email = email
		lv.EmailFirst = false
		if !l.cfg.PasswordLogin {
			lv.EmailFirst = true
			lv.Error = msgNoMethod
			l.renderLogin(w, r, http.StatusBadRequest, lv)
			return
		}
		l.renderLogin(w, r, http.StatusOK, lv)
		return
	}
	if !l.cfg.PasswordLogin {
		l.Error(w, r, http.StatusNotFound, "not_found", "Password sign-in is not enabled.")
		return
	}
	lv.EmailFirst = false
	pw := r.PostFormValue("password")
	ip := l.cfg.ClientIP(r)
	acctKey := strings.ToLower(rawEmail)
	if emailOK {
		acctKey = email
	}
	if len(acctKey) > 254 {
		acctKey = acctKey[:254]
	}
	now := l.now()
	src := l.prefixes.Key(ip)
	pairKey := acctKey + "\x00" + src
	// Refusals come before any password check and do not count as failures.
	scope, until := "", time.Time{}
	if locked, u := l.ips.locked(src, now); locked {
		scope, until = "ip", u
	} else if locked, u := l.pairs.locked(pairKey, now); locked {
		scope, until = "account_ip", u
	} else if locked, u := l.accounts.locked(acctKey, now); locked && !l.familiar.has(pairKey, now) {
		scope, until = "account_backoff", u
	}
	if scope != "" {
		l.refused(r, storage.AuditEvent{Type: audit.LoginFailure, Outcome: "failure", Detail: map[string]string{"reason": "throttled", "scope": scope, "method": "password"}})
		lv.Error = msgThrottled
		if scope == "account_backoff" {
			lv.Error = msgBackoff
		}
		w.Header().Set("Retry-After", retryAfter(until.Sub(now)))
		l.renderLogin(w, r, http.StatusTooManyRequests, lv)
		return
	}
	acct, reason, err := l.checkPassword(r, email, emailOK, pw)
	if err != nil {
		l.log.Error("idp: password login failed", "error", err)
		lv.Error = msgUnavail
		l.renderLogin(w, r, http.StatusServiceUnavailable, lv)
		return
	}
	if reason != "" {
		lockedPair := l.pairs.fail(pairKey, l.cfg.Throttle.AccountFailures, now)
		lockedIP := l.ips.fail(src, l.cfg.Throttle.IPFailures, now)
		backoff := l.accounts.backoff(acctKey, l.cfg.Throttle.BackoffAfter, now)
		detail := map[string]string{"reason": reason, "method": "password"}
		if backoff > 0 {
			detail["locked"] = "account_backoff"
		}
		if lockedPair {
			detail["locked"] = "account_ip"
		}
		if lockedIP {
			detail["locked"] = "ip"
		}
		l.audit(r, storage.AuditEvent{Type: audit.LoginFailure, Outcome: "failure", Subject: acct.ID, Detail: detail})
		lv.Error = msgBadLogin
		l.renderLogin(w, r, http.StatusBadRequest, lv)
		return
	}
	// The account's back-off is kept: a sign-in by its owner must not give
	// the attacker a fresh series.
	l.pairs.reset(pairKey)
	l.familiar.add(pairKey, now)
	if err := l.startSession(w, r, acct.ID, "password",
		storage.AuditEvent{Type: audit.LoginSuccess, Outcome: "success", Subject: acct.ID, Detail: map[string]string{"method": "password"}}); err != nil {
		l.log.Error("idp: starting session failed", "error", err)
		lv.Error = msgUnavail
		l.renderLogin(w, r, http.StatusServiceUnavailable, lv)
		return
	}
	l.redirect(w, r, returnTo)
}

// checkPassword verifies a password login. reason is the audit code of a
// refusal ("" on success); err is a storage failure. Every refusal costs one
// argon2id verification.
func (l *Login) checkPassword(r *http.Request, email string, emailOK bool, pw string) (storage.Account, string, error) {
	if !emailOK {
		l.hasher.VerifyDummy(pw)
		return storage.Account{}, "invalid_email", nil
	}
	if pw == "" || len(pw) > 4*password.MaxLength {
		l.hasher.VerifyDummy(pw)
		return storage.Account{}, "invalid_password", nil
	}
	acct, err := l.store.GetAccountByEmail(r.Context(), email)
	if errors.Is(err, storage.ErrNotFound) {
		l.hasher.VerifyDummy(pw)
		return storage.Account{}, "unknown_account", nil
	}
	if err != nil {
		return storage.Account{}, "", err
	}
	if acct.PasswordHash == "" {
		l.hasher.VerifyDummy(pw)
		return acct, "no_password", nil
	}
	ok, rehash, err := l.hasher.Verify(acct.PasswordHash, pw)
	if err != nil {
		l.log.Error("idp: stored password hash is malformed", "account", acct.ID)
		return acct, "bad_hash", nil
	}
	if !ok {
		return acct, "bad_password", nil
	}
	if acct.Disabled {
		return acct, "disabled", nil
	}
	if rehash {
		if h, err := l.hasher.Hash(pw); err == nil {
			acct.PasswordHash = h
			acct.UpdatedAt = l.now()
			if err := l.store.UpdateAccount(r.Context(), acct); err != nil {
				l.log.Warn("idp: rehashing password failed", "error", err)
			}
		}
	}
	return acct, "", nil
}

func (l *Login) serveSignup(w http.ResponseWriter, r *http.Request) {
	if l.cfg.Signup.Mode == SignupOff {
		l.Error(w, r, http.StatusNotFound, "signup_disabled", msgSignupOff)
		return
	}
	sv := &signupView{Action: l.signupPath, LoginURL: l.loginPath}
	if l.cfg.Signup.Mode == SignupDomains {
		sv.Domains = l.cfg.Signup.Domains
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		sv.ReturnTo = SafeReturnTo(r.URL.Query().Get("return_to"))
		sv.LoginURL = loginURLWith(l.loginPath, sv.ReturnTo)
		l.renderSignup(w, r, http.StatusOK, sv)
	case http.MethodPost:
		if !l.checkPost(w, r) {
			return
		}
		l.postSignup(w, r, sv)
	default:
		methodNotAllowed(l, w, r, "GET, HEAD, POST")
	}
}

func (l *Login) renderSignup(w http.ResponseWriter, r *http.Request, status int, sv *signupView) {
	l.render(w, status, "signup.html", view{CSRF: l.preSessionToken(w, r), Signup: sv}, newNonce(), false)
}

func (l *Login) postSignup(w http.ResponseWriter, r *http.Request, sv *signupView) {
	sv.ReturnTo = SafeReturnTo(r.PostFormValue("return_to"))
	sv.ClientName = clientName(r.PostFormValue("client_name"))
	sv.LoginURL = loginURLWith(l.loginPath, sv.ReturnTo)
	sv.Name = cleanName(r.PostFormValue("name"))
	raw := strings.TrimSpace(r.PostFormValue("email"))
	if len(raw) <= 254 {
		sv.Email = raw
	}
	ip := l.prefixes.Key(l.cfg.ClientIP(r))
	now := l.now()
	if locked, _ := l.signups.locked(ip, now); locked {
		l.refused(r, storage.AuditEvent{Type: audit.Signup, Outcome: "failure", Detail: map[string]string{"reason": "throttled"}})
		sv.Error = "Too many attempts from your network. Try again later."
		w.Header().Set("Retry-After", "900")
		l.renderSignup(w, r, http.StatusTooManyRequests, sv)
		return
	}
	l.signups.fail(ip, l.cfg.Throttle.SignupsPerIP, now)
	email, ok := normalizeEmail(raw)
	if !ok {
		sv.Error = msgBadEmail
		l.renderSignup(w, r, http.StatusBadRequest, sv)
		return
	}
	if l.cfg.Signup.Mode == SignupDomains && !domainAllowed(emailDomain(email), l.cfg.Signup.Domains) {
		l.audit(r, storage.AuditEvent{Type: audit.Signup, Outcome: "failure", Detail: map[string]string{"reason": "domain_not_allowed"}})
		sv.Error = msgSignupDom
		l.renderSignup(w, r, http.StatusForbidden, sv)
		return
	}
	pw := r.PostFormValue("password")
	if err := password.Check(pw, email, l.cfg.Branding.ProductName); err != nil {
		sv.Error = policyMessage(err)
		l.renderSignup(w, r, http.StatusBadRequest, sv)
		return
	}
	// From here on the answer is the same whether the address is new or
	// taken (requirement 41): the password is hashed either way, no session
	// is started, and with a mailer the mail says which case it was.
	ctx := r.Context()
	h, err := l.hasher.Hash(pw)
	if err != nil {
		l.log.Error("idp: signup failed", "error", err)
		sv.Error = msgUnavail
		l.renderSignup(w, r, http.StatusServiceUnavailable, sv)
		return
	}
	existing, err := l.store.GetAccountByEmail(ctx, email)
	if errors.Is(err, storage.ErrNotFound) {
		acct := storage.Account{ID: newAccountID(), Email: email, Name: sv.Name, PasswordHash: h, CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now}
		if err = l.store.CreateAccount(ctx, acct); err == nil {
			l.audit(r, storage.AuditEvent{Type: audit.Signup, Outcome: "success", Subject: acct.ID})
			if l.cfg.Mailer != nil {
				if err := l.sendVerification(ctx, acct, h, sv.ReturnTo); err != nil {
					l.log.Error("idp: storing email verification failed", "error", err)
				}
			}
			l.signupSent(w, r, email, sv)
			return
		}
		if errors.Is(err, storage.ErrAlreadyExists) { // lost a race with another signup
			existing, err = l.store.GetAccountByEmail(ctx, email)
		}
	}
	if err != nil {
		l.log.Error("idp: signup failed", "error", err)
		sv.Error = msgUnavail
		l.renderSignup(w, r, http.StatusServiceUnavailable, sv)
		return
	}
	l.audit(r, storage.AuditEvent{Type: audit.Signup, Outcome: "failure", Subject: existing.ID, Detail: map[string]string{"reason": "exists"}})
	if l.cfg.Mailer != nil && !existing.Disabled {
		switch {
		case existing.EmailVerified:
			l.mailExisting(existing)
		case existing.PasswordHash != "":
			// An unverified signup holds the address: the mailbox owner
			// may claim it with the password chosen now.
			if err := l.sendVerification(ctx, existing, h, sv.ReturnTo); err != nil {
				l.log.Error("idp: storing email verification failed", "error", err)
			}
		}
		// An upstream account whose email nobody verified gets no mail.
	}
	l.signupSent(w, r, email, sv)
}

func domainAllowed(d string, list []string) bool {
	for _, a := range list {
		if d == a {
			return true
		}
	}
	return false
}

func policyMessage(err error) string {
	switch {
	case errors.Is(err, password.ErrTooShort):
		return "Choose a password of at least 8 characters."
	case errors.Is(err, password.ErrTooLong):
		return "Choose a password of at most 256 characters."
	case errors.Is(err, password.ErrCommon):
		return "This password is too common or easy to guess. Choose another one."
	default:
		return "This password cannot be used. Choose another one."
	}
}

// cleanName bounds a display name and drops control characters.
func cleanName(s string) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s))
	if utf8.RuneCountInString(s) > 100 {
		s = string([]rune(s)[:100])
	}
	return s
}

func loginURLWith(loginPath, returnTo string) string {
	if returnTo == "" || returnTo == "/" {
		return loginPath
	}
	return loginPath + "?return_to=" + urlQueryEscape(returnTo)
}

func (l *Login) serveLogout(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		returnTo := SafeReturnTo(r.URL.Query().Get("return_to"))
		lv := &logoutView{Action: l.logoutPath, ReturnTo: returnTo, LoginURL: l.loginPath}
		if s, ok := l.currentSession(r); ok {
			lv.Email = cmpOr(s.Account.Email, cmpOr(s.Account.Name, s.Account.ID))
			l.render(w, http.StatusOK, "logout.html", view{CSRF: sessionToken(s), Logout: lv}, newNonce(), true)
			return
		}
		l.render(w, http.StatusOK, "logout.html", view{Logout: lv}, newNonce(), true)
	case http.MethodPost:
		if err := limitBody(w, r); err != nil {
			l.Error(w, r, http.StatusBadRequest, "invalid_request", "The form could not be read.")
			return
		}
		returnTo := SafeReturnTo(r.PostFormValue("return_to"))
		s, signedIn := l.currentSession(r)
		if signedIn {
			if err := l.VerifyCSRF(r); err != nil {
				l.refused(r, storage.AuditEvent{Type: audit.CSRFFailure, Outcome: "failure", Subject: s.AccountID, Detail: map[string]string{"path": r.URL.Path, "reason": csrfReason(err)}})
				l.Error(w, r, http.StatusForbidden, "csrf_failed", "This form has expired or was not sent from this site. Go back, reload the page and try again.")
				return
			}
		}
		l.endSession(w, r)
		if signedIn {
			l.audit(r, storage.AuditEvent{Type: audit.Logout, Outcome: "success", Subject: s.AccountID})
		}
		if returnTo != "/" {
			l.redirect(w, r, returnTo)
			return
		}
		l.render(w, http.StatusOK, "logout.html", view{Logout: &logoutView{Done: true, LoginURL: l.loginPath}}, newNonce(), true)
	default:
		methodNotAllowed(l, w, r, "GET, HEAD, POST")
	}
}

// startProvider handles POST {prefix}/login/{name}: a provider button.
func (l *Login) startProvider(w http.ResponseWriter, r *http.Request, p Provider) {
	if r.Method != http.MethodPost {
		methodNotAllowed(l, w, r, "POST")
		return
	}
	if !l.checkPost(w, r) {
		return
	}
	hint, _ := normalizeEmail(r.PostFormValue("email"))
	l.beginUpstream(w, r, p, SafeReturnTo(r.PostFormValue("return_to")), hint)
}

func (l *Login) beginUpstream(w http.ResponseWriter, r *http.Request, p Provider, returnTo, hint string) {
	a, err := l.newAttempt(r.Context(), p, returnTo, hint, hashID(l.preSessionKey(w, r)))
	if err != nil {
		l.log.Error("idp: creating login attempt failed", "error", err)
		l.Error(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", msgUnavail)
		return
	}
	if err := p.Begin(w, r, a); err != nil {
		l.log.Error("idp: starting upstream login failed", "provider", p.Name(), "error", err)
		_, _ = l.takeAttempt(r.Context(), a.ID)
		l.audit(r, storage.AuditEvent{Type: audit.LoginFailure, Outcome: "failure", Detail: map[string]string{"reason": "begin_failed", "method": p.Kind() + ":" + p.Name()}})
		l.upstreamUnreachable(w, r, p)
	}
}

// Consent implements authserver.Browser.
func (l *Login) Consent(w http.ResponseWriter, r *http.Request, page authserver.ConsentPage) {
	u := page.User
	label := cmpOr(u.Email, cmpOr(u.Name, u.Subject))
	initial := "?"
	if rr, _ := utf8.DecodeRuneInString(cmpOr(u.Name, u.Email)); rr != utf8.RuneError {
		initial = strings.ToUpper(string(rr))
	}
	cv := &consentView{
		ClientName:   cmpOr(page.Client.Name, page.Client.ID),
		ClientIDHost: page.ClientIDHost,
		RedirectHost: page.RedirectHost,
		Resource:     page.Resource,
		Action:       page.Action,
		UserLabel:    label,
		Initial:      initial,
		LogoutURL:    l.logoutPath,
		LoopbackOnly: page.LoopbackOnly,
		NoRemember:   page.NoRemember,
		Scopes:       describeScopes(page.Scopes, l.cfg.ScopeDescriptions),
		StepUp:       page.StepUp,
		NewScopes:    page.NewScopes,
	}
	for _, st := range page.Tools {
		for i := range cv.Scopes {
			if cv.Scopes[i].Name != st.Scope {
				continue
			}
			for _, t := range st.Tools {
				cv.Scopes[i].Tools = append(cv.Scopes[i].Tools, toolView{Name: t.Name, New: t.New, Title: t.Title, Description: t.Description})
				if t.New && !slices.Contains(cv.NewTools, t.Name) {
					cv.NewTools = append(cv.NewTools, t.Name)
				}
			}
		}
	}
	l.render(w, http.StatusOK, "consent.html", view{CSRF: l.formToken(w, r), Consent: cv}, newNonce(), false)
}

// StepUpDone implements authserver.StepUpPages: the page after a step-up
// decision.
func (l *Login) StepUpDone(w http.ResponseWriter, r *http.Request, res authserver.StepUpResult) {
	sv := &stepUpView{ClientName: cmpOr(res.Client.Name, res.Client.ID), Approved: res.Approved, Scopes: res.Scopes}
	l.render(w, http.StatusOK, "stepup_done.html", view{StepUp: sv}, newNonce(), true)
}

// Error implements authserver.Browser.
func (l *Login) Error(w http.ResponseWriter, r *http.Request, status int, code, description string) {
	l.errorPage(w, r, status, code, "", description)
}

// errorPage renders the error page; an empty heading is the status's.
func (l *Login) errorPage(w http.ResponseWriter, r *http.Request, status int, code, heading, description string) {
	if status < 400 || status > 599 {
		status = http.StatusBadRequest
	}
	if len(description) > 500 {
		description = description[:500]
	}
	ev := &errorView{Status: status, Code: code, Description: sentence(cmpOr(description, http.StatusText(status))), Heading: cmpOr(heading, errorHeading(status)),
		RetryURL: l.retryURL(r, status), AccountURL: l.accountPath}
	l.render(w, status, "error.html", view{Err: ev}, newNonce(), true)
}

// retryURL is where "Try again" leads: the same page for a GET that failed
// for a reason that may pass (our side, a rate limit), or the flow a failed
// form was part of (its return_to, when the form was already read). Empty
// when retrying cannot help.
func (l *Login) retryURL(r *http.Request, status int) string {
	transient := status >= 500 || status == http.StatusTooManyRequests
	switch {
	case r.Method == http.MethodGet && transient:
		if to := SafeReturnTo(r.URL.RequestURI()); to != "/" {
			return to
		}
	case r.Method == http.MethodPost && r.PostForm != nil:
		if to := SafeReturnTo(r.PostForm.Get("return_to")); to != "/" {
			return to
		}
	}
	return ""
}

// sentence makes a description read as one: a capital first letter and a
// final full stop (the authorization server's descriptions are written for
// the error_description of RFC 6749, in lower case).
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if last, _ := utf8.DecodeLastRuneInString(s); !strings.ContainsRune(".!?", last) {
		s += "."
	}
	return s
}

func errorHeading(status int) string {
	switch {
	case status == http.StatusNotFound:
		return "Page not found"
	case status == http.StatusForbidden:
		return "Access denied"
	case status == http.StatusTooManyRequests:
		return "Too many requests"
	case status >= 500:
		return "Something went wrong on our side"
	default:
		return "This request can't be completed"
	}
}

// notAllowed shows the page for an upstream identity refused by the allow rules.
func (l *Login) notAllowed(w http.ResponseWriter, r *http.Request, ext ExternalIdentity) {
	name := ext.Provider
	if p := l.providers[ext.Provider]; p != nil {
		name = p.DisplayName()
	}
	email, _ := normalizeEmail(ext.Email)
	l.render(w, http.StatusForbidden, "not_allowed.html", view{NotAllowed: &notAllowedView{Email: email, Provider: name, LoginURL: l.loginPath}}, newNonce(), true)
}

// retryAfter renders a Retry-After value in whole seconds (at least 1).
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}
