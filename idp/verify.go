package idp

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Email verification of self-signup accounts (requirement 36).
//
// With a Mailer configured, signup mails a single-use link to the address:
// {prefix}/verify-email?token=<256 random bits, base64url>[&return_to=...].
// Only the token's SHA-256 is stored, with the account, the address and the
// hash of the password chosen in that signup. Opening the link shows a
// confirmation form that asks for that password: the link alone (a mail
// scanner, someone who was sent a link for an account they did not create)
// verifies nothing, and whoever signed up with somebody else's address
// cannot verify it without that person's mailbox. Confirming marks the
// email verified, sets the password of that signup, ends every other
// session of the account and signs this browser in.
//
// Until then the account may sign in but its email is not asserted (no
// email claim, no email header, no link by email), it receives no mail
// but verification links, and the authorization endpoint shows the
// "verify your email" page instead of issuing a code.

// Mailer sends a plain-text mail to one address; *mailer.SMTP implements it.
type Mailer interface {
	Send(ctx context.Context, to, subject, text string) error
}

const (
	verifyTokenBytes = 32
	// mailTimeout bounds one background delivery.
	mailTimeout = time.Minute
)

// parseVerifyToken decodes the token of a verification link: exactly 32
// bytes in unpadded base64url (43 characters). Anything else is refused
// before the store is asked.
func parseVerifyToken(s string) ([]byte, bool) {
	if len(s) != 43 {
		return nil, false
	}
	raw, err := b64url.DecodeString(s)
	if err != nil || len(raw) != verifyTokenBytes || b64url.EncodeToString(raw) != s {
		return nil, false
	}
	return raw, true
}

// mustVerify reports whether an account is held back until its email is
// verified: a password account nobody verified, while verification mails
// are configured.
func (l *Login) mustVerify(a storage.Account) bool {
	return l.cfg.Mailer != nil && !a.EmailVerified && a.PasswordHash != "" && a.Email != ""
}

// sendVerification stores a new verification of acct's address, carrying
// the password hash pwHash, and mails the link in the background.
func (l *Login) sendVerification(ctx context.Context, acct storage.Account, pwHash, returnTo string) error {
	raw := make([]byte, verifyTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	now := l.now()
	v := storage.EmailVerification{Hash: hashID(raw), AccountID: acct.ID, Email: acct.Email, PasswordHash: pwHash, CreatedAt: now, ExpiresAt: now.Add(l.cfg.VerificationTTL)}
	if err := l.store.SaveEmailVerification(ctx, v); err != nil {
		return err
	}
	link := l.origin + l.verifyPath + "?token=" + b64url.EncodeToString(raw)
	if rt := SafeReturnTo(returnTo); rt != "/" {
		link += "&return_to=" + urlQueryEscape(rt)
	}
	product := l.cfg.Branding.ProductName
	l.mail(acct.Email, "Confirm your email address for "+product,
		"Someone, hopefully you, created an account for "+product+" with this address,\n"+
			"or asked for a new confirmation link.\n\n"+
			"To confirm the address, open this link and enter the password you chose\n"+
			"(the link works once, for "+humanDuration(l.cfg.VerificationTTL)+"):\n\n"+link+"\n\n"+
			"If this was not you, ignore this mail: without that password the link does nothing.\n")
	return nil
}

// humanDuration says d in hours or minutes for a mail ("24 hours").
func humanDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		if d == time.Hour {
			return "1 hour"
		}
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	case d >= time.Minute:
		return strconv.Itoa(int(d/time.Minute)) + " minutes"
	}
	return d.String()
}

// mailExisting tells the owner of an existing account that someone tried
// to sign up with the address, instead of revealing it on the page.
func (l *Login) mailExisting(acct storage.Account) {
	product := l.cfg.Branding.ProductName
	l.mail(acct.Email, "You already have an account for "+product,
		"Someone, hopefully you, tried to create an account for "+product+" with this address,\n"+
			"but it already has one. Sign in here instead:\n\n"+l.origin+l.loginPath+"\n\n"+
			"If this was not you, ignore this mail: nothing was changed.\n")
}

// mail delivers in the background: the signup page answers at once and the
// same way whatever the mail says (requirement 41). Failures are logged
// without the message.
func (l *Login) mail(to, subject, text string) {
	l.mailWG.Add(1)
	go func() {
		defer l.mailWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), mailTimeout)
		defer cancel()
		if err := l.cfg.Mailer.Send(ctx, to, subject, text); err != nil {
			l.log.Error("idp: sending mail failed", "error", err)
		}
	}()
}

// WaitMail waits for the mails being sent in the background (shutdown, tests).
func (l *Login) WaitMail() { l.mailWG.Wait() }

// VerifyEmail implements authserver.EmailVerifier: the page shown instead of
// a grant while the signed-in account's email is not verified.
func (l *Login) VerifyEmail(w http.ResponseWriter, r *http.Request, req authserver.LoginRequest) {
	s, ok := l.currentSession(r)
	if !ok {
		l.Login(w, r, req)
		return
	}
	l.renderVerify(w, http.StatusOK, sessionToken(s), &verifyView{
		Mode: "pending", Email: s.Account.Email, ReturnTo: SafeReturnTo(req.ReturnTo), ClientName: cmpOr(req.Client.Name, req.Client.ID),
		Action: l.resendPath, LogoutURL: l.logoutPath,
	})
}

func (l *Login) renderVerify(w http.ResponseWriter, status int, csrf string, vv *verifyView) {
	l.render(w, status, "verify_email.html", view{CSRF: csrf, Verify: vv}, newNonce(), false)
}

// serveVerify handles {prefix}/verify-email: GET shows the confirmation
// form of a link, POST confirms it with the password of the signup.
func (l *Login) serveVerify(w http.ResponseWriter, r *http.Request) {
	if l.cfg.Mailer == nil {
		l.Error(w, r, http.StatusNotFound, "not_found", "This page does not exist.")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q := r.URL.Query()
		raw, ok := parseVerifyToken(q.Get("token"))
		var v storage.EmailVerification
		var err error
		if ok {
			v, err = l.store.GetEmailVerification(r.Context(), hashID(raw), l.now())
		}
		if !ok || err != nil {
			l.verifyLinkFailed(w, r, err)
			return
		}
		l.renderVerify(w, http.StatusOK, l.preSessionToken(w, r), &verifyView{
			Mode: "confirm", Email: v.Email, Token: q.Get("token"), ReturnTo: SafeReturnTo(q.Get("return_to")), Action: l.verifyPath,
		})
	case http.MethodPost:
		if !l.checkPost(w, r) {
			return
		}
		l.postVerify(w, r)
	default:
		methodNotAllowed(l, w, r, "GET, HEAD, POST")
	}
}

func (l *Login) verifyLinkFailed(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		l.log.Error("idp: email verification lookup failed", "error", err)
		l.Error(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", msgUnavail)
		return
	}
	l.audit(r, storage.AuditEvent{Type: audit.AccountEmailVerify, Outcome: "failure", Detail: map[string]string{"reason": "link_invalid"}})
	l.Error(w, r, http.StatusBadRequest, "link_invalid", "This confirmation link has expired or was already used. Sign in to ask for a new one.")
}

func (l *Login) postVerify(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tok := r.PostFormValue("token")
	returnTo := SafeReturnTo(r.PostFormValue("return_to"))
	raw, ok := parseVerifyToken(tok)
	if !ok {
		l.verifyLinkFailed(w, r, nil)
		return
	}
	now := l.now()
	v, err := l.store.GetEmailVerification(ctx, hashID(raw), now)
	if err != nil {
		l.verifyLinkFailed(w, r, err)
		return
	}
	vv := &verifyView{Mode: "confirm", Email: v.Email, Token: tok, ReturnTo: returnTo, Action: l.verifyPath}
	ip := l.cfg.ClientIP(r)
	ipLocked, _ := l.ips.locked(ip, now)
	acctLocked, _ := l.accounts.locked(v.Email, now)
	if ipLocked || acctLocked {
		vv.Error = msgThrottled
		w.Header().Set("Retry-After", "60")
		l.renderVerify(w, http.StatusTooManyRequests, l.preSessionToken(w, r), vv)
		return
	}
	pw := r.PostFormValue("password")
	good := false
	if v.PasswordHash != "" && pw != "" && len(pw) <= 1024 {
		good, _, _ = l.hasher.Verify(v.PasswordHash, pw)
	} else {
		l.hasher.VerifyDummy(pw)
	}
	if !good {
		l.accounts.fail(v.Email, l.cfg.Throttle.AccountFailures, now)
		l.ips.fail(ip, l.cfg.Throttle.IPFailures, now)
		l.audit(r, storage.AuditEvent{Type: audit.AccountEmailVerify, Outcome: "failure", Subject: v.AccountID, Detail: map[string]string{"reason": "bad_password"}})
		vv.Error = "Incorrect password. Enter the password you chose when you created the account."
		l.renderVerify(w, http.StatusBadRequest, l.preSessionToken(w, r), vv)
		return
	}
	if v, err = l.store.ConsumeEmailVerification(ctx, hashID(raw), now); err != nil {
		l.verifyLinkFailed(w, r, err)
		return
	}
	acct, err := l.store.GetAccount(ctx, v.AccountID)
	if err != nil || acct.Email != v.Email || acct.Disabled {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			l.log.Error("idp: email verification: account lookup failed", "error", err)
		}
		l.verifyLinkFailed(w, r, nil)
		return
	}
	passwordSet := acct.PasswordHash != v.PasswordHash
	acct.EmailVerified, acct.PasswordHash, acct.UpdatedAt = true, v.PasswordHash, now
	if passwordSet {
		acct.PasswordChangedAt = now
	}
	if err := l.store.UpdateAccount(ctx, acct); err != nil {
		l.log.Error("idp: email verification: updating account failed", "error", err)
		l.Error(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", msgUnavail)
		return
	}
	// Whoever else was signed in to the account (perhaps whoever typed this
	// address at signup) is signed out, and loses the grants they got.
	if _, err := l.endAccountAccess(ctx, acct.ID, ReasonEmailVerified); err != nil {
		l.log.Error("idp: email verification: ending the account's access failed", "error", err)
	}
	l.accounts.reset(v.Email)
	detail := map[string]string{}
	if passwordSet {
		detail["password_set"] = "true"
	}
	l.audit(r, storage.AuditEvent{Type: audit.AccountEmailVerified, Outcome: "success", Subject: acct.ID, Detail: detail})
	if passwordSet {
		l.audit(r, storage.AuditEvent{Type: audit.AccountPasswordChanged, Outcome: "success", Subject: acct.ID, Detail: map[string]string{"by": "email_verification"}})
	}
	if err := l.startSession(w, r, acct.ID, "password", storage.AuditEvent{Type: audit.LoginSuccess, Outcome: "success", Subject: acct.ID,
		Detail: map[string]string{"method": "password", "via": "email_verification"}}); err != nil {
		l.log.Error("idp: starting session failed", "error", err)
		l.redirect(w, r, loginURLWith(l.loginPath, returnTo))
		return
	}
	l.redirect(w, r, returnTo)
}

// serveResend handles POST {prefix}/verify-email/resend: a signed-in
// account whose email is not verified asks for a new link (throttled like
// signups, per client IP).
func (l *Login) serveResend(w http.ResponseWriter, r *http.Request) {
	if l.cfg.Mailer == nil {
		l.Error(w, r, http.StatusNotFound, "not_found", "This page does not exist.")
		return
	}
	if r.Method != http.MethodPost {
		methodNotAllowed(l, w, r, "POST")
		return
	}
	if !l.checkPost(w, r) {
		return
	}
	returnTo := SafeReturnTo(r.PostFormValue("return_to"))
	s, ok := l.currentSession(r)
	if !ok {
		l.redirect(w, r, loginURLWith(l.loginPath, returnTo))
		return
	}
	if !l.mustVerify(s.Account) {
		l.redirect(w, r, returnTo)
		return
	}
	vv := &verifyView{Mode: "pending", Email: s.Account.Email, ReturnTo: returnTo, Action: l.resendPath, LogoutURL: l.logoutPath}
	ip, now := l.cfg.ClientIP(r), l.now()
	if locked, _ := l.signups.locked(ip, now); locked {
		vv.Error = "Too many attempts from your network. Try again later."
		w.Header().Set("Retry-After", "900")
		l.renderVerify(w, http.StatusTooManyRequests, sessionToken(s), vv)
		return
	}
	l.signups.fail(ip, l.cfg.Throttle.SignupsPerIP, now)
	if err := l.sendVerification(r.Context(), s.Account, s.Account.PasswordHash, returnTo); err != nil {
		l.log.Error("idp: storing email verification failed", "error", err)
		vv.Error = msgUnavail
		l.renderVerify(w, http.StatusServiceUnavailable, sessionToken(s), vv)
		return
	}
	l.audit(r, storage.AuditEvent{Type: audit.AccountEmailVerify, Outcome: "success", Subject: s.AccountID, Detail: map[string]string{"reason": "resent"}})
	vv.Notice = "We sent a new link to " + s.Account.Email + "."
	l.renderVerify(w, http.StatusOK, sessionToken(s), vv)
}

// signupSent is the one answer of a signup that passed the form checks,
// whether the address was new or not (requirement 41).
func (l *Login) signupSent(w http.ResponseWriter, r *http.Request, email string, sv *signupView) {
	vv := &verifyView{Mode: "sent", Email: email, ReturnTo: sv.ReturnTo, ClientName: sv.ClientName,
		LoginURL: loginURLWith(l.loginPath, sv.ReturnTo)}
	if l.cfg.Mailer == nil {
		vv.Mode = "ready"
	}
	if !strings.Contains(vv.LoginURL, "?") {
		vv.LoginURL += "?login_hint=" + urlQueryEscape(email)
	} else {
		vv.LoginURL += "&login_hint=" + urlQueryEscape(email)
	}
	l.renderVerify(w, http.StatusOK, "", vv)
}
