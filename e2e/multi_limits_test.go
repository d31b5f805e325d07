package e2e

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestMultiSharedLimits runs two instances on one PostgreSQL and floods
// /register and /token from one address, alternating between them. Per
// instance (the default) each admits its own burst, twice the budget in
// all; with shared_limits the burst holds across both, within the sync
// slack (one unacknowledged request per instance and bucket).
func TestMultiSharedLimits(t *testing.T) {
	const dcrBurst, tokenBurst, n = 10, 8, 40
	flood := func(t *testing.T, p *pair, path, ctype, body string) (admitted int) {
		t.Helper()
		for i := range n {
			base := []*instance{p.A, p.B}[i%2].base
			resp, err := p.Client.Post(base+path, ctype, strings.NewReader(body))
			if err != nil {
				t.Fatalf("POST %s: %v", path, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusTooManyRequests:
				if resp.Header.Get("Retry-After") == "" {
					t.Fatalf("%s: 429 without Retry-After", path)
				}
			case http.StatusBadRequest, http.StatusUnauthorized:
				admitted++ // past the limiter, refused on its merits
			default:
				t.Fatalf("%s: unexpected status %d", path, resp.StatusCode)
			}
			// Requests a few ms apart, as a client's are; the sync
			// is asynchronous and never holds a request.
			time.Sleep(5 * time.Millisecond)
		}
		return admitted
	}
	const limits = "dcr {\n\t\t\trate_limit 10 1h\n\t\t}\n\t\ttoken_rate_limit 0.001 8"
	t.Run("per instance", func(t *testing.T) {
		p := startPair(t, limits)
		got := flood(t, p, "/register", "text/plain", "x")
		t.Logf("per instance: %d of %d registrations admitted (burst %d per instance)", got, n, dcrBurst)
		if got != 2*dcrBurst {
			t.Fatalf("per-instance limits admitted %d registrations, want %d (each instance its own burst)", got, 2*dcrBurst)
		}
		got = loginFailures(t, p, 20)
		t.Logf("per instance: %d of 20 wrong-password sign-ins checked before the lockout (limit 5 per instance)", got)
		if got != 10 {
			t.Fatalf("per-instance throttling checked %d wrong passwords, want 10 (5 on each instance)", got)
		}
	})
	t.Run("shared", func(t *testing.T) {
		p := startPair(t, limits, "shared_limits")
		got := flood(t, p, "/register", "text/plain", "x")
		t.Logf("shared_limits: %d of %d registrations admitted (burst %d)", got, n, dcrBurst)
		if got < dcrBurst || got > dcrBurst+2 {
			t.Fatalf("shared limits admitted %d registrations, want %d to %d (burst + sync slack)", got, dcrBurst, dcrBurst+2)
		}
		got = loginFailures(t, p, 20)
		t.Logf("shared_limits: %d of 20 wrong-password sign-ins checked before the lockout (limit 5 per account and address)", got)
		if got < 5 || got > 6 {
			t.Fatalf("shared limits checked %d wrong passwords, want 5 to 6 (limit + sync slack)", got)
		}
		got = flood(t, p, "/token", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=nope&client_id=nobody")
		t.Logf("shared_limits: %d of %d token requests admitted (burst %d)", got, n, tokenBurst)
		if got < tokenBurst || got > tokenBurst+2 {
			t.Fatalf("shared limits admitted %d token requests, want %d to %d (burst + sync slack)", got, tokenBurst, tokenBurst+2)
		}
	})
}

// loginFailures tries Alice's account with a wrong password n times,
// alternating between the instances (each through its own hosted login),
// and returns how many attempts were checked (400) rather than throttled
// (429).
func loginFailures(t *testing.T, p *pair, n int) (checked int) {
	t.Helper()
	browsers := []*browser{newBrowser(t, p.Client, cliRedirect), newBrowser(t, p.Client, cliRedirect)}
	for i := range n {
		in := []*instance{p.A, p.B}[i%2]
		v := oauth2.GenerateVerifier()
		q := url.Values{"response_type": {"code"}, "client_id": {cliClientID}, "redirect_uri": {cliRedirect},
			"scope": {"todo:read"}, "state": {v[:22]}, "code_challenge": {oauth2.S256ChallengeFromVerifier(v)},
			"code_challenge_method": {"S256"}, "resource": {p.MCPURL}}
		resp, err := browsers[i%2].Get(in.base + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatalf("%s authorize: %v", in.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		f, err := findForm(string(body))
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("%s: no login form (%d, %v)", in.name, resp.StatusCode, err)
		}
		vals := f.values
		vals.Set("email", aliceEmail)
		vals.Set("password", "not-the-password")
		action, _ := resp.Request.URL.Parse(f.action)
		resp, err = browsers[i%2].PostForm(action.String(), vals)
		if err != nil {
			t.Fatalf("%s login: %v", in.name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusBadRequest:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("%s: wrong password answered %d", in.name, resp.StatusCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return checked
}
