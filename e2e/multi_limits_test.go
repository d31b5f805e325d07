package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
	})
	t.Run("shared", func(t *testing.T) {
		p := startPair(t, limits, "shared_limits")
		got := flood(t, p, "/register", "text/plain", "x")
		t.Logf("shared_limits: %d of %d registrations admitted (burst %d)", got, n, dcrBurst)
		if got < dcrBurst || got > dcrBurst+2 {
			t.Fatalf("shared limits admitted %d registrations, want %d to %d (burst + sync slack)", got, dcrBurst, dcrBurst+2)
		}
		got = flood(t, p, "/token", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=nope&client_id=nobody")
		t.Logf("shared_limits: %d of %d token requests admitted (burst %d)", got, n, tokenBurst)
		if got < tokenBurst || got > tokenBurst+2 {
			t.Fatalf("shared limits admitted %d token requests, want %d to %d (burst + sync slack)", got, tokenBurst, tokenBurst+2)
		}
	})
}
