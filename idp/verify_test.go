package idp

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/idp/mailer"
	"github.com/mcpauth/caddy-mcpauth/internal/smtpsink"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// smtpEnv is a hosted login with open signup whose mails go to a real SMTP
// server (Postfix's smtp-sink).
func smtpEnv(t *testing.T, mutate ...func(*Config)) (*env, *smtpsink.Sink) {
	t.Helper()
	sink := smtpsink.Start(t)
	m, err := mailer.New(mailer.Config{Host: sink.Host, Port: sink.Port, TLS: mailer.TLSNone, From: "no-reply@acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) {
		c.Signup.Mode = SignupOpen
		c.Mailer = m
		for _, f := range mutate {
			f(c)
		}
	})
	t.Cleanup(e.login.WaitMail)
	return e, sink
}

var linkRE = regexp.MustCompile(`https?://\S+/verify-email\?\S+`)

// linkIn returns the path and query of the verification link of a mail.
func linkIn(t *testing.T, m smtpsink.Message) string {
	t.Helper()
	raw := linkRE.FindString(m.Body)
	if raw == "" {
		t.Fatalf("no verification link in:\n%s", m.Body)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

func isVerifyMail(m smtpsink.Message) bool {
	return strings.Contains(m.Header.Get("Subject"), "Confirm your email")
}

func (b *browser) signup(email, pw, returnTo string) resp {
	b.e.t.Helper()
	page := b.get("/signup")
	return b.post("/signup", url.Values{"csrf_token": {csrfOf(b.e.t, page.body)}, "email": {email}, "password": {pw}, "return_to": {returnTo}})
}

// confirm opens a verification link and posts its form with pw.
func (b *browser) confirm(link, pw string) resp {
	b.e.t.Helper()
	page := b.get(link)
	if page.status != http.StatusOK {
		return page
	}
	u, _ := url.Parse(link)
	q := u.Query()
	return b.post("/verify-email", url.Values{"csrf_token": {csrfOf(b.e.t, page.body)}, "token": {q.Get("token")}, "return_to": {q.Get("return_to")}, "password": {pw}})
}

// TestSignupEmailVerification is requirement 36: with smtp configured a
// signup mails a single-use link; until it is confirmed the account may
// sign in but gets no grant and its email is not verified.
func TestSignupEmailVerification(t *testing.T) {
	e, sink := smtpEnv(t)
	const email, pw = "new@example.org", "a perfectly fine passphrase"
	b := e.browser()
	res := b.signup(email, pw, "/authorize?a=1")
	if res.status != http.StatusOK || !strings.Contains(res.body, "Check your email") || findCookie(res.cookies, SessionCookie) != nil {
		t.Fatalf("signup: %d\n%s", res.status, res.body)
	}
	acct := e.account(email)
	if acct.EmailVerified {
		t.Fatal("new signup is verified")
	}
	first := sink.Wait(t, email, isVerifyMail)
	if !strings.Contains(first.Body, "for 24 hours") {
		t.Fatalf("mail does not say how long the link works:\n%s", first.Body)
	}
	link := linkIn(t, first)
	if !strings.Contains(link, "return_to=%2Fauthorize%3Fa%3D1") {
		t.Fatalf("link %q does not resume the request", link)
	}

	// Signed in but unverified: the authorization request shows the
	// verify page, and a new link can be asked for.
	if res := b.login(email, pw, "/authorize?a=1"); res.status != http.StatusSeeOther {
		t.Fatalf("login of an unverified account: %d", res.status)
	}
	page := b.get("/authorize?a=1")
	if !strings.Contains(page.body, "Verify your email") || strings.Contains(page.body, "hello ") {
		t.Fatalf("unverified account reached the grant:\n%s", page.body)
	}
	resent := b.post("/verify-email/resend", url.Values{"csrf_token": {csrfOf(t, page.body)}, "return_to": {"/authorize?a=1"}})
	if resent.status != http.StatusOK || !strings.Contains(resent.body, "We sent a new link") {
		t.Fatalf("resend: %d\n%s", resent.status, resent.body)
	}
	e.login.WaitMail()
	if n := len(sink.Messages(t, email)); n != 2 {
		t.Fatalf("%d mails after resend, want 2", n)
	}

	other := e.browser()
	if res := other.confirm(link, "not the password"); res.status != http.StatusBadRequest || !strings.Contains(res.body, "Incorrect password") {
		t.Fatalf("confirm with a wrong password: %d\n%s", res.status, res.body)
	}
	if e.account(email).EmailVerified {
		t.Fatal("a wrong password verified the email")
	}
	res = other.confirm(link, pw)
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/authorize?a=1" || findCookie(res.cookies, SessionCookie) == nil {
		t.Fatalf("confirm: %d %q\n%s", res.status, res.header.Get("Location"), res.body)
	}
	if !e.account(email).EmailVerified {
		t.Fatal("confirmed email is not verified")
	}
	if who := other.get("/authorize?a=1").body; who != "hello "+acct.ID+" "+email+" password" {
		t.Fatalf("after confirmation: %q", who)
	}
	// The other browser's session ended; the link (and the resent one) are used up.
	if who := b.get("/authorize?a=1").body; strings.HasPrefix(who, "hello ") {
		t.Fatal("the account's other session survived the confirmation")
	}
	if res := e.browser().confirm(link, pw); res.status != http.StatusBadRequest {
		t.Fatalf("link used twice: %d", res.status)
	}
	for _, m := range sink.Messages(t, email) {
		if l := linkIn(t, m); l != link {
			if res := e.browser().confirm(l, pw); res.status != http.StatusBadRequest {
				t.Fatalf("older link still works after confirmation: %d", res.status)
			}
		}
	}
}

// TestSignupSquatterCannotVerify: whoever signs up with somebody else's
// address cannot verify it (no mailbox), the mailbox owner cannot verify the
// squatter's account with the squatter's link (no password), but may claim
// the address by signing up again: confirming sets their password and ends
// the squatter's sessions (requirement 35).
func TestSignupSquatterCannotVerify(t *testing.T) {
	e, sink := smtpEnv(t)
	const victim = "victim@example.org"
	mallory := e.browser()
	mallory.signup(victim, "attacker chosen secret", "/")
	if res := mallory.login(victim, "attacker chosen secret", "/authorize"); res.status != http.StatusSeeOther {
		t.Fatalf("squatter login: %d", res.status)
	}
	// The squatter got a grant while signed in (say, for a client that
	// accepts unverified accounts before smtp was turned on).
	now := e.clock.Now()
	squatRT := sha256.Sum256([]byte("squatter refresh"))
	mustOK(t, e.store.CreateGrant(context.Background(), storage.Grant{ID: "squat", ClientID: "app",
		Subject: e.account(victim).ID, RefreshHash: squatRT[:], CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	squatLink := linkIn(t, sink.Wait(t, victim, isVerifyMail))
	owner := e.browser()
	if res := owner.confirm(squatLink, "the owner's own passphrase"); res.status != http.StatusBadRequest {
		t.Fatalf("squatter's link confirmed without its password: %d", res.status)
	}
	res := owner.signup(victim, "the owner's own passphrase", "/")
	if res.status != http.StatusOK || !strings.Contains(res.body, "Check your email") {
		t.Fatalf("second signup: %d", res.status)
	}
	e.login.WaitMail()
	var claim string
	for _, m := range sink.Messages(t, victim) {
		if l := linkIn(t, m); l != squatLink {
			claim = l
		}
	}
	if claim == "" {
		t.Fatal("no mail for the second signup")
	}
	if res := owner.confirm(claim, "the owner's own passphrase"); res.status != http.StatusSeeOther {
		t.Fatalf("claim: %d\n%s", res.status, res.body)
	}
	a := e.account(victim)
	if !a.EmailVerified {
		t.Fatal("claimed address not verified")
	}
	if who := mallory.get("/authorize").body; strings.HasPrefix(who, "hello ") {
		t.Fatal("the squatter is still signed in")
	}
	g, err := e.store.GetGrant(context.Background(), "squat")
	mustOK(t, err)
	if !g.Revoked() || g.RevokedReason != ReasonEmailVerified {
		t.Fatalf("the squatter's grant at confirmation: revoked %v (%q)", g.Revoked(), g.RevokedReason)
	}
	if res := e.browser().login(victim, "attacker chosen secret", "/"); res.status == http.StatusSeeOther {
		t.Fatal("the squatter's password still works")
	}
	if res := e.browser().login(victim, "the owner's own passphrase", "/"); res.status != http.StatusSeeOther {
		t.Fatal("the owner's password does not work")
	}
}

// TestSignupDoesNotRevealAccounts is requirement 41: the answer to a signup
// is the same for a new and a taken address, with and without smtp; with
// smtp the owner of the taken address is told by mail and nothing is
// created or changed.
func TestSignupDoesNotRevealAccounts(t *testing.T) {
	answer := func(e *env, email string) resp {
		res := e.browser().signup(email, "a perfectly fine passphrase", "/authorize?a=1")
		res.body = strings.ReplaceAll(strings.ReplaceAll(res.body, email, "EMAIL"), url.QueryEscape(email), "EMAIL")
		res.body = regexp.MustCompile(`nonce-[^'"]+|nonce="[^"]+"`).ReplaceAllString(res.body, "NONCE")
		return res
	}
	same := func(t *testing.T, fresh, taken resp) {
		t.Helper()
		if fresh.status != taken.status || fresh.body != taken.body {
			t.Fatalf("new address: %d, taken address: %d\n--- new\n%s\n--- taken\n%s", fresh.status, taken.status, fresh.body, taken.body)
		}
		if findCookie(fresh.cookies, SessionCookie) != nil || findCookie(taken.cookies, SessionCookie) != nil {
			t.Fatal("a signup answer set a session")
		}
	}
	t.Run("without smtp", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Signup.Mode = SignupOpen })
		before := e.account(aliceEmail)
		same(t, answer(e, "fresh@example.org"), answer(e, aliceEmail))
		if after := e.account(aliceEmail); after.PasswordHash != before.PasswordHash {
			t.Fatal("signup changed the existing account")
		}
	})
	t.Run("with smtp", func(t *testing.T) {
		e, sink := smtpEnv(t)
		before := e.account(aliceEmail)
		same(t, answer(e, "fresh@example.org"), answer(e, aliceEmail))
		m := sink.Wait(t, aliceEmail, nil)
		if !strings.Contains(m.Header.Get("Subject"), "already have an account") || linkRE.MatchString(m.Body) {
			t.Fatalf("mail to the existing address: %v\n%s", m.Header, m.Body)
		}
		if after := e.account(aliceEmail); after.PasswordHash != before.PasswordHash || after.UpdatedAt != before.UpdatedAt {
			t.Fatal("signup changed the existing account")
		}
		sink.Wait(t, "fresh@example.org", isVerifyMail)
	})
}

func FuzzParseVerifyToken(f *testing.F) {
	for _, s := range []string{"", "abc", strings.Repeat("A", 43), strings.Repeat("_", 43), strings.Repeat("A", 42) + "B", strings.Repeat("A", 44), strings.Repeat("A", 42) + "=", "%2F" + strings.Repeat("A", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, ok := parseVerifyToken(s)
		if !ok {
			if raw != nil {
				t.Fatal("refused token returned bytes")
			}
			return
		}
		if len(raw) != verifyTokenBytes || b64url.EncodeToString(raw) != s {
			t.Fatalf("accepted %q as %x", s, raw)
		}
	})
}
