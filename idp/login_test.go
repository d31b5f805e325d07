package idp

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestPasswordLoginSuccess(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()

	page := b.get("/authorize?client_id=x&state=abc")
	if page.status != http.StatusOK || !strings.Contains(page.body, "Test App") || !strings.Contains(page.body, `action="/login"`) {
		t.Fatalf("login page: %d\n%s", page.status, page.body)
	}
	if !strings.Contains(page.body, `name="return_to" value="/authorize?client_id=x&amp;state=abc"`) {
		t.Fatalf("return_to not carried in the form:\n%s", page.body)
	}
	tok := csrfOf(t, page.body)
	res := b.post("/login", url.Values{"csrf_token": {tok}, "email": {"Alice@Example.COM"}, "password": {alicePW},
		"return_to": {"/authorize?client_id=x&state=abc"}, "step": {"password"}, "client_name": {"Test App"}})
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/authorize?client_id=x&state=abc" {
		t.Fatalf("POST /login = %d %q, want 303 to the return path", res.status, res.header.Get("Location"))
	}
	c := findCookie(res.cookies, SessionCookie)
	if c == nil {
		t.Fatal("no session cookie")
	}
	raw := res.header.Values("Set-Cookie")
	var line string
	for _, l := range raw {
		if strings.HasPrefix(l, SessionCookie+"=") {
			line = l
		}
	}
	for _, want := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(line, want) {
			t.Errorf("session cookie %q lacks %s", line, want)
		}
	}
	if strings.Contains(strings.ToLower(line), "domain=") {
		t.Errorf("__Host- cookie must not carry a Domain: %q", line)
	}
	if id, err := b64url.DecodeString(c.Value); err != nil || len(id) != 32 {
		t.Fatalf("session id is not 32 random bytes: %q", c.Value)
	}
	// Stored under its hash, never in the clear.
	s, err := e.store.GetSession(context.Background(), sessionHashOf(t, c.Value))
	if err != nil || s.AccountID != e.account(aliceEmail).ID || s.Method != "password" || len(s.CSRFSecret) != 32 {
		t.Fatalf("stored session %+v, %v", s, err)
	}
	got := b.get("/authorize?client_id=x&state=abc")
	want := "hello " + e.account(aliceEmail).ID + " " + aliceEmail + " password"
	if got.body != want {
		t.Fatalf("identify = %q, want %q", got.body, want)
	}
	// Signed in: GET /login goes straight back.
	if r := b.get("/login?return_to=/x"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/x" {
		t.Fatalf("GET /login signed in = %d %q", r.status, r.header.Get("Location"))
	}
	if evs := e.auditTypes("login.success"); len(evs) != 1 || evs[0].Subject != e.account(aliceEmail).ID || evs[0].Detail["method"] != "password" {
		t.Fatalf("audit login.success = %+v", evs)
	}
}

func TestPasswordLoginFailureIsGeneric(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, email, pw, reason string
	}{
		{"wrong password", aliceEmail, "not the password", "bad_password"},
		{"unknown user", "nobody@example.com", "not the password", "unknown_account"},
		{"invalid email", "not-an-email", "whatever123", "invalid_email"},
		{"empty password", aliceEmail, "", "invalid_password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			res := b.login(tc.email, tc.pw, "/authorize?x=1")
			if res.status != http.StatusBadRequest || !strings.Contains(res.body, "Incorrect email or password.") {
				t.Fatalf("status %d, body lacks the generic message:\n%s", res.status, res.body)
			}
			if !strings.Contains(res.body, `role="alert"`) {
				t.Error("error is not announced (role=alert)")
			}
			if findCookie(res.cookies, SessionCookie) != nil {
				t.Fatal("a failed login set a session cookie")
			}
			if tc.pw != "" && strings.Contains(res.body, tc.pw) {
				t.Fatal("the password is echoed in the page")
			}
			evs := e.auditTypes("login.failure")
			if len(evs) == 0 || evs[0].Detail["reason"] != tc.reason {
				t.Fatalf("audit = %+v, want reason %s", evs, tc.reason)
			}
			for _, ev := range evs {
				for _, v := range ev.Detail {
					if tc.pw != "" && strings.Contains(v, tc.pw) {
						t.Fatal("audit event carries the password")
					}
				}
			}
		})
	}
}

func TestDisabledAccountCannotLogin(t *testing.T) {
	e := newEnv(t, nil)
	id := e.account(aliceEmail).ID
	if _, err := e.login.SetAccountDisabled(context.Background(), id, true); err != nil {
		t.Fatal(err)
	}
	res := e.browser().login(aliceEmail, alicePW, "/")
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "Incorrect email or password.") {
		t.Fatalf("disabled login = %d", res.status)
	}
	if evs := e.auditTypes("login.failure"); evs[0].Detail["reason"] != "disabled" {
		t.Fatalf("reason = %q", evs[0].Detail["reason"])
	}
}

func TestThrottlePerAccountAndIP(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Throttle = ThrottleConfig{AccountFailures: 3, IPFailures: 100, Lockout: time.Minute}
	})
	attacker := func() *browser { b := e.browser(); b.ip = "198.51.100.1"; return b }
	for i := range 3 {
		if res := attacker().login(aliceEmail, "wrong password!", "/"); res.status != http.StatusBadRequest {
			t.Fatalf("failure %d: status %d", i, res.status)
		}
	}
	res := attacker().login(aliceEmail, alicePW, "/")
	if res.status != http.StatusTooManyRequests || !strings.Contains(res.body, "Too many failed sign-in attempts") || findCookie(res.cookies, SessionCookie) != nil {
		t.Fatalf("locked (account, IP) with the right password = %d", res.status)
	}
	if ra := res.header.Get("Retry-After"); ra != "60" {
		t.Fatalf("Retry-After = %q, want the lockout's 60", ra)
	}
	// Unknown accounts lock the same way (no enumeration through the lock).
	for range 3 {
		attacker().login("ghost@example.com", "wrong password!", "/")
	}
	if res := attacker().login("ghost@example.com", "wrong password!", "/"); res.status != http.StatusTooManyRequests {
		t.Fatalf("unknown account not throttled: %d", res.status)
	}
	// Another account from the same address is not affected.
	if res := attacker().login(bobEmail, bobPW, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("bob = %d", res.status)
	}
	if evs := e.auditTypes("login.failure"); evs[0].Detail["reason"] != "throttled" && evs[1].Detail["reason"] != "throttled" {
		t.Fatalf("throttling not audited: %+v", evs[:2])
	}
	e.clock.Advance(time.Minute + time.Second)
	if res := attacker().login(aliceEmail, alicePW, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("after the lockout = %d", res.status)
	}
	// Lockouts grow: three more failures lock for 2 minutes.
	for range 3 {
		attacker().login(aliceEmail, "wrong password!", "/")
	}
	e.clock.Advance(time.Minute + time.Second)
	if res := attacker().login(aliceEmail, alicePW, "/"); res.status != http.StatusTooManyRequests {
		t.Fatalf("second lockout should last 2m: %d", res.status)
	}
	e.clock.Advance(time.Minute)
	if res := attacker().login(aliceEmail, alicePW, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("after the second lockout = %d", res.status)
	}
}

func TestThrottlePerIP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Throttle = ThrottleConfig{AccountFailures: 100, IPFailures: 3} })
	for i := range 3 {
		b := e.browser()
		b.ip = "198.51.100.7"
		b.hdr.Set("X-Forwarded-For", "10.0.0."+string(rune('1'+i))) // never trusted
		b.login("user"+string(rune('a'+i))+"@example.com", "wrong password!", "/")
	}
	b := e.browser()
	b.ip = "198.51.100.7"
	b.hdr.Set("X-Forwarded-For", "192.0.2.200")
	if res := b.login(aliceEmail, alicePW, "/"); res.status != http.StatusTooManyRequests {
		t.Fatalf("locked IP = %d, want 429", res.status)
	}
	other := e.browser()
	other.ip = "198.51.100.8"
	if res := other.login(aliceEmail, alicePW, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("other IP = %d, want 303", res.status)
	}
}

func TestDefaultClientIPIgnoresForwardedFor(t *testing.T) {
	r := httptestRequest("198.51.100.1:5555")
	r.Header.Set("X-Forwarded-For", "203.0.113.5")
	if got := remoteIP(r); got != "198.51.100.1" {
		t.Fatalf("remoteIP = %q", got)
	}
	r = httptestRequest("[2001:db8::1]:443")
	if got := remoteIP(r); got != "2001:db8::1" {
		t.Fatalf("remoteIP v6 = %q", got)
	}
}

func httptestRequest(remote string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "https://auth.example.com/login", nil)
	r.RemoteAddr = remote
	return r
}

func TestSessionRenewedAtLogin(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	first := findCookie(b.login(aliceEmail, alicePW, "/").cookies, SessionCookie)
	res := b.login(bobEmail, bobPW, "/")
	second := findCookie(res.cookies, SessionCookie)
	if first == nil || second == nil || first.Value == second.Value {
		t.Fatal("the session id was not renewed at login")
	}
	if _, err := e.store.GetSession(context.Background(), sessionHashOf(t, first.Value)); !isNotFound(err) {
		t.Fatalf("old session still stored: %v", err)
	}
	if got := b.get("/authorize"); !strings.HasPrefix(got.body, "hello "+e.account(bobEmail).ID) {
		t.Fatalf("identify after renewal = %q", got.body)
	}
}

func TestSessionTimeouts(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.SessionIdle = time.Hour; c.SessionAbsolute = 24 * time.Hour })
		b := e.browser()
		c := findCookie(b.login(aliceEmail, alicePW, "/").cookies, SessionCookie)
		e.clock.Advance(59 * time.Minute)
		if !strings.HasPrefix(b.get("/authorize").body, "hello ") {
			t.Fatal("session ended before the idle timeout")
		}
		e.clock.Advance(59 * time.Minute) // touched above: still alive
		if !strings.HasPrefix(b.get("/authorize").body, "hello ") {
			t.Fatal("use did not move the idle timer")
		}
		e.clock.Advance(time.Hour)
		if got := b.get("/authorize"); strings.HasPrefix(got.body, "hello ") {
			t.Fatal("idle session still valid")
		}
		if _, err := e.store.GetSession(context.Background(), sessionHashOf(t, c.Value)); !isNotFound(err) {
			t.Fatalf("expired session not deleted: %v", err)
		}
	})
	t.Run("absolute", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.SessionIdle = time.Hour; c.SessionAbsolute = 3 * time.Hour })
		b := e.browser()
		b.login(aliceEmail, alicePW, "/")
		for range 5 {
			e.clock.Advance(35 * time.Minute)
			if !strings.HasPrefix(b.get("/authorize").body, "hello ") {
				t.Fatal("session ended early")
			}
		}
		e.clock.Advance(26 * time.Minute) // 3h01m after sign-in
		if strings.HasPrefix(b.get("/authorize").body, "hello ") {
			t.Fatal("session outlived the absolute timeout")
		}
	})
	t.Run("defaults", func(t *testing.T) {
		e := newEnv(t, nil)
		if e.login.cfg.SessionIdle != 8*time.Hour || e.login.cfg.SessionAbsolute != 7*24*time.Hour {
			t.Fatalf("defaults = %v / %v", e.login.cfg.SessionIdle, e.login.cfg.SessionAbsolute)
		}
	})
}

func TestIdentifyRefusesDeadSessions(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(e *env, accountID string, hash []byte)
	}{
		{"deleted session", func(e *env, _ string, h []byte) { e.store.DeleteSession(context.Background(), h) }},
		{"revoked sessions", func(e *env, id string, _ []byte) { e.login.RevokeSessions(context.Background(), id) }},
		{"disabled account", func(e *env, id string, _ []byte) { e.login.SetAccountDisabled(context.Background(), id, true) }},
		{"password changed", func(e *env, id string, _ []byte) {
			e.clock.Advance(time.Second)
			if _, err := e.login.SetPassword(context.Background(), id, "a brand new passphrase"); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"expired", func(e *env, _ string, _ []byte) { e.clock.Advance(8*time.Hour + time.Second) }},
		{"garbage cookie", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			b := e.browser()
			c := findCookie(b.login(aliceEmail, alicePW, "/").cookies, SessionCookie)
			if tc.break_ != nil {
				tc.break_(e, e.account(aliceEmail).ID, sessionHashOf(t, c.Value))
			} else {
				u, _ := url.Parse(e.srv.URL)
				b.c.Jar.SetCookies(u, []*http.Cookie{{Name: SessionCookie, Value: "not-a-session", Path: "/"}})
			}
			r, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/authorize", nil)
			r.AddCookie(b.cookie(SessionCookie))
			if id, ok := e.login.Identify(r); ok {
				t.Fatalf("Identify = %+v, want no identity", id)
			}
			if got := b.get("/authorize"); got.status != http.StatusOK || !strings.Contains(got.body, `action="/login"`) {
				t.Fatalf("not sent to login: %d %q", got.status, got.body)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	c := findCookie(b.login(aliceEmail, alicePW, "/").cookies, SessionCookie)

	page := b.get("/logout")
	if page.status != http.StatusOK || !strings.Contains(page.body, "Sign out?") || !strings.Contains(page.body, aliceEmail) {
		t.Fatalf("GET /logout = %d\n%s", page.status, page.body)
	}
	// GET never signs out.
	if !strings.HasPrefix(b.get("/authorize").body, "hello ") {
		t.Fatal("GET /logout ended the session")
	}
	if res := b.post("/logout", url.Values{}); res.status != http.StatusForbidden {
		t.Fatalf("POST /logout without CSRF = %d, want 403", res.status)
	}
	if !strings.HasPrefix(b.get("/authorize").body, "hello ") {
		t.Fatal("a refused logout ended the session")
	}
	res := b.post("/logout", url.Values{"csrf_token": {csrfOf(t, page.body)}})
	if res.status != http.StatusOK || !strings.Contains(res.body, "signed out") {
		t.Fatalf("POST /logout = %d\n%s", res.status, res.body)
	}
	if cl := findCookie(res.cookies, SessionCookie); cl == nil || cl.MaxAge >= 0 {
		t.Fatal("logout did not clear the cookie")
	}
	if _, err := e.store.GetSession(context.Background(), sessionHashOf(t, c.Value)); !isNotFound(err) {
		t.Fatalf("session still stored after logout: %v", err)
	}
	if evs := e.auditTypes("logout"); len(evs) != 1 || evs[0].Subject != e.account(aliceEmail).ID {
		t.Fatalf("logout audit = %+v", evs)
	}
	if got := b.get("/logout"); !strings.Contains(got.body, "not signed in") {
		t.Fatal("logout page after sign-out")
	}
	// Return path after logout.
	b.login(aliceEmail, alicePW, "/")
	page = b.get("/logout?return_to=/bye")
	res = b.post("/logout", url.Values{"csrf_token": {csrfOf(t, page.body)}, "return_to": {"https://evil.example/"}})
	if res.status != http.StatusOK {
		t.Fatalf("unsafe return_to after logout must not redirect: %d %q", res.status, res.header.Get("Location"))
	}
}

func TestReturnToAfterLogin(t *testing.T) {
	e := newEnv(t, nil)
	tests := map[string]string{
		"/authorize?client_id=a&state=b": "/authorize?client_id=a&state=b",
		// Nowhere safe to return to: the account page, never the site's root
		// (which shows a blank page on an authorization server's host).
		"//evil.example/":       "/account",
		"/\\evil.example":       "/account",
		"https://evil.example/": "/account",
		"javascript:alert(1)":   "/account",
		"/%2F%2Fevil.example":   "/account",
		"":                      "/account",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			res := e.browser().login(aliceEmail, alicePW, in)
			if res.status != http.StatusSeeOther || res.header.Get("Location") != want {
				t.Fatalf("return_to %q: %d %q, want %q", in, res.status, res.header.Get("Location"), want)
			}
		})
	}
}

func TestForceLogin(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login(aliceEmail, alicePW, "/")
	first := e.login.now()
	e.clock.Advance(time.Hour)
	page := b.get("/authorize?prompt=login")
	if !strings.Contains(page.body, "Please sign in again") || !strings.Contains(page.body, `value="`+aliceEmail+`"`) {
		t.Fatalf("force login page:\n%s", page.body)
	}
	res := b.post("/login", url.Values{"csrf_token": {csrfOf(t, page.body)}, "email": {aliceEmail}, "password": {alicePW}, "return_to": {"/authorize"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("re-login = %d", res.status)
	}
	r, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/authorize", nil)
	r.AddCookie(b.cookie(SessionCookie))
	id, ok := e.login.Identify(r)
	if !ok || !id.AuthTime.After(first) {
		t.Fatalf("AuthTime not renewed: %v", id.AuthTime)
	}
}

func TestSeedAccountsFollowConfig(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login(aliceEmail, alicePW, "/")
	id := e.account(aliceEmail).ID
	// New again (a config reload) with a changed password for alice.
	cfg := e.login.cfg
	cfg.SeedAccounts = []SeedAccount{{Email: aliceEmail, Password: "a changed passphrase"}}
	l2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.login = l2
	if e.account(aliceEmail).ID != id {
		t.Fatal("reseeding changed the account id")
	}
	if ok, _, _ := l2.hasher.Verify(e.account(aliceEmail).PasswordHash, "a changed passphrase"); !ok {
		t.Fatal("password not updated from config")
	}
	if n, _ := e.store.DeleteAccountSessions(context.Background(), id); n != 0 {
		t.Fatal("sessions survived a password change")
	}
	bad := []SeedAccount{
		{Email: "not-an-email", Password: "long enough pw"},
		{Email: "c@example.com", Password: "short"},
		{Email: "c@example.com", PasswordHash: "$2a$10$abc"},
		{Email: "c@example.com", Password: "long enough pw", PasswordHash: "$argon2id$..."},
	}
	for i, s := range bad {
		cfg.SeedAccounts = []SeedAccount{s}
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("bad seed %d accepted", i)
		}
	}
}
