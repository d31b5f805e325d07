package idp

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An attacker failing on an account from one address locks that address out
// of the account, not the account's owner signing in from elsewhere with
// the right password (requirement 15; the 2026-12 review, item 9).
func TestLockoutSparesOwnerOnAnotherIP(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Throttle = ThrottleConfig{AccountFailures: 3, IPFailures: 100, Lockout: time.Minute}
	})
	attacker := e.browser()
	attacker.ip = "198.51.100.66"
	for i := range 12 {
		res := attacker.login(aliceEmail, fmt.Sprintf("guess number %d!", i), "/")
		if i < 3 && res.status != http.StatusBadRequest {
			t.Fatalf("failure %d: status %d", i, res.status)
		}
		if i >= 3 && res.status != http.StatusTooManyRequests {
			t.Fatalf("attempt %d from the attacker's address = %d, want 429", i, res.status)
		}
	}
	// Even the right password from the attacker's address is refused now.
	if res := attacker.login(aliceEmail, alicePW, "/"); res.status != http.StatusTooManyRequests || findCookie(res.cookies, SessionCookie) != nil {
		t.Fatalf("right password from the throttled address = %d", res.status)
	}
	// The owner, from an address that has not failed, signs in.
	owner := e.browser()
	owner.ip = "203.0.113.9"
	if res := owner.login(aliceEmail, alicePW, "/"); res.status != http.StatusSeeOther || findCookie(res.cookies, SessionCookie) == nil {
		t.Fatalf("owner with the right password = %d, want 303", res.status)
	}
	// Another address in the attacker's IPv6 /64 is the same requester.
	v6 := e.browser()
	v6.ip = "2001:db8:aa:bb::1"
	for range 3 {
		v6.login(bobEmail, "not bob's password", "/")
	}
	same := e.browser()
	same.ip = "2001:db8:aa:bb:ffff::2"
	if res := same.login(bobEmail, bobPW, "/"); res.status != http.StatusTooManyRequests {
		t.Fatalf("another address of the throttled /64 = %d, want 429", res.status)
	}
	other := e.browser()
	other.ip = "2001:db8:aa:cc::1"
	if res := other.login(bobEmail, bobPW, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("a different /64 = %d, want 303", res.status)
	}
	// The attacker's lock ends and grows as before.
	e.clock.Advance(time.Minute + time.Second)
	if res := attacker.login(aliceEmail, alicePW, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("after the lockout = %d", res.status)
	}
}

// Failures from ever-new addresses cannot lock the account for everyone, but
// the account-wide back-off bounds how many passwords they get to try.
func TestAccountBackoffBoundsAttackerRate(t *testing.T) {
	e := newEnv(t, nil) // default throttle
	// The owner signed in from home before the attack.
	home := e.browser()
	home.ip = "2001:db8:feed:1::10"
	if res := home.login(aliceEmail, alicePW, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("owner before the attack = %d", res.status)
	}
	start := e.clock.Now()
	checked, refused := 0, 0
	maxRetry := 0
	for i := 0; e.clock.Now().Sub(start) < 20*time.Minute; i++ {
		b := e.browser()
		b.ip = fmt.Sprintf("2001:db8:%x:%x::1", i/0x10000, i%0x10000) // a new /64 every time
		res := b.login(aliceEmail, fmt.Sprintf("guess number %d!", i), "/")
		switch res.status {
		case http.StatusBadRequest:
			checked++
		case http.StatusTooManyRequests:
			refused++
			ra, err := strconv.Atoi(res.header.Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Fatalf("429 without a usable Retry-After: %q", res.header.Get("Retry-After"))
			}
			maxRetry = max(maxRetry, ra)
		default:
			t.Fatalf("attempt %d = %d", i, res.status)
		}
		e.clock.Advance(2 * time.Second)
	}
	// 600 attempts in 20 minutes: the back-off (1 s doubling to 1 min after
	// 10 failures) lets about 10 + 6 + 19 through.
	if checked > 40 || refused == 0 {
		t.Fatalf("%d passwords checked and %d refused in 20 minutes; want at most 40 checked", checked, refused)
	}
	if maxRetry > 61 {
		t.Fatalf("back-off refusal asked to wait %ds; the back-off is capped at 1 minute", maxRetry)
	}
	// During the back-off the owner's familiar network (another address of
	// the same /64) is not held back.
	if locked, _ := e.login.accounts.locked(aliceEmail, e.clock.Now()); !locked {
		t.Fatal("no back-off running at the end of the attack")
	}
	home = e.browser()
	home.ip = "2001:db8:feed:1::11"
	if res := home.login(aliceEmail, alicePW, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("owner from a familiar network during the back-off = %d, want 303", res.status)
	}
	// From a new address the owner is refused at most for the current
	// back-off, then signs in with the right password.
	owner := e.browser()
	owner.ip = "203.0.113.9"
	res := owner.login(aliceEmail, alicePW, "/")
	if res.status == http.StatusTooManyRequests {
		if !strings.Contains(res.body, "Too many") {
			t.Fatalf("back-off page: %s", res.body)
		}
		ra, _ := strconv.Atoi(res.header.Get("Retry-After"))
		e.clock.Advance(time.Duration(ra) * time.Second)
		res = owner.login(aliceEmail, alicePW, "/")
	}
	if res.status != http.StatusSeeOther {
		t.Fatalf("owner after the back-off = %d, want 303", res.status)
	}
}
