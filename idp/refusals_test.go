package idp

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// A flood of unauthenticated refusals writes one record per reason, source
// prefix and minute, with the right counts; authenticated events stay one
// record each (requirement 40).
func TestUnauthenticatedRefusalsAggregated(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Throttle = ThrottleConfig{AccountFailures: 2, IPFailures: 100, Lockout: time.Hour}
	})
	ctx := context.Background()
	csrf := func(ip string, n int) {
		for range n {
			b := e.browser()
			b.ip = ip
			if res := b.post("/login", url.Values{"email": {aliceEmail}, "password": {alicePW}}); res.status != http.StatusForbidden {
				t.Fatalf("CSRF-less POST = %d", res.status)
			}
		}
	}
	// Minute 1: 120 CSRF failures from three addresses of one IPv4 /24 and
	// 60 from many addresses of one IPv6 /64.
	for i := range 3 {
		csrf(fmt.Sprintf("198.51.100.%d", 10+i), 40)
	}
	for i := range 60 {
		csrf(fmt.Sprintf("2001:db8:7:8:%x::1", i), 1)
	}
	// An attacker gets throttled, then keeps trying: 2 failures, 30 refusals.
	attacker := e.browser()
	attacker.ip = "192.0.2.7"
	for range 32 {
		attacker.login(aliceEmail, "a wrong password", "/")
	}
	// The owner signs in from elsewhere: one record.
	owner := e.browser()
	owner.ip = "203.0.113.9"
	if res := owner.login(aliceEmail, alicePW, "/"); res.status != http.StatusSeeOther {
		t.Fatalf("owner = %d", res.status)
	}
	// Minute 2: 25 more from the IPv4 /24.
	e.clock.Advance(time.Minute)
	csrf("198.51.100.200", 25)

	if err := e.refusals.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	all, err := e.store.ListAudit(ctx, storage.AuditQuery{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	// 120+60+25 CSRF failures + 30 throttled + 2 failures + 1 success would
	// be 238 records written one by one.
	if len(all) > 8 {
		t.Fatalf("%d audit records for a flood of 238 requests:\n%+v", len(all), all)
	}
	minute1 := e.clock.Now().Add(-time.Minute).UTC().Truncate(time.Minute)
	type rec struct {
		typ, source string
		at          time.Time
	}
	got := map[rec]int{}
	for _, ev := range all {
		if ev.Detail[abuse.DetailAggregation] != "minute" {
			continue
		}
		n, err := strconv.Atoi(ev.Detail[abuse.DetailCount])
		if err != nil {
			t.Fatalf("aggregated record without a count: %+v", ev)
		}
		got[rec{ev.Type + "/" + ev.Detail["reason"], ev.IP, ev.Time}] += n
	}
	want := map[rec]int{
		{"csrf.failure/missing", "198.51.100.0/24", minute1}:                  120,
		{"csrf.failure/missing", "2001:db8:7:8::/64", minute1}:                60,
		{"csrf.failure/missing", "198.51.100.0/24", minute1.Add(time.Minute)}: 25,
		{"login.failure/throttled", "192.0.2.0/24", minute1}:                  30,
	}
	if len(got) != len(want) {
		t.Fatalf("aggregated records %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%v: count %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	// Checked passwords and the sign-in stay one record each.
	if evs := e.auditTypes("login.failure"); countReason(evs, "bad_password") != 2 {
		t.Fatalf("bad_password records: %+v", evs)
	}
	if evs := e.auditTypes("login.success"); len(evs) != 1 || evs[0].IP != "203.0.113.9" || evs[0].Detail[abuse.DetailCount] != "" {
		t.Fatalf("login.success records: %+v", evs)
	}
}

func countReason(evs []storage.AuditEvent, reason string) int {
	n := 0
	for _, ev := range evs {
		if ev.Detail["reason"] == reason {
			n++
		}
	}
	return n
}
