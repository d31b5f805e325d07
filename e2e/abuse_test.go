package e2e

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestRefusalFloodAggregated floods /register and the login form's CSRF
// check on the real binary: the audit log gets one record per outcome,
// source prefix and minute with the count (written when the config stops,
// here by a reload), not one per request (requirement 40).
func TestRefusalFloodAggregated(t *testing.T) {
	s := startStack(t, stackOpts{extraApp: "dcr"})
	const regs, csrfs = 40, 30
	for range regs {
		resp, err := s.Client.Post(s.Issuer+"/register", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 && resp.StatusCode != 429 {
			t.Fatalf("bad registration = %d", resp.StatusCode)
		}
	}
	for range csrfs {
		resp, err := s.Client.PostForm(s.Issuer+"/login", url.Values{"email": {aliceEmail}, "password": {alicePassword}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("CSRF-less login = %d", resp.StatusCode)
		}
	}
	// Stopping the old config writes what it held.
	s.caddy.reload(t, s.caddyfile(stackOpts{extraApp: "dcr", productName: "Todo Reloaded"}))

	for _, c := range []struct {
		typ     string
		want    int
		records int // at most: outcomes × minutes (the flood may straddle one)
	}{
		{"client.register_refused", regs, 4}, // invalid_client_metadata then rate_limited
		{"csrf.failure", csrfs, 2},
	} {
		var evs []struct {
			IP     string            `json:"ip"`
			Detail map[string]string `json:"detail"`
		}
		if err := json.Unmarshal([]byte(opsMustCLI(t, s, "audit", "tail", "--type", c.typ, "--json", "--limit", "1000")), &evs); err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, ev := range evs {
			n, err := strconv.Atoi(ev.Detail["count"])
			if err != nil || ev.Detail["aggregation"] != "minute" || ev.IP != "127.0.0.0/24" {
				t.Fatalf("%s: not an aggregated record: %+v", c.typ, ev)
			}
			total += n
		}
		if total != c.want || len(evs) == 0 || len(evs) > c.records {
			t.Fatalf("%s: %d records counting %d, want at most %d records counting %d", c.typ, len(evs), total, c.records, c.want)
		}
	}
}
