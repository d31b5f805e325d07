package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"golang.org/x/oauth2"
)

// authCode runs one authorization request through the hosted login (the
// browser keeps its session) and returns a code and its PKCE verifier.
func authCode(t *testing.T, b *browser, issuer, resource string) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	state := oauth2.GenerateVerifier()[:22]
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {cliClientID},
		"redirect_uri":          {cliRedirect},
		"scope":                 {"todo:read offline_access"},
		"state":                 {state},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"},
		"resource":              {resource},
	}
	res := b.authorize(t, issuer+"/authorize?"+q.Encode(), aliceEmail, alicePassword)
	if res.Query.Get("error") != "" || res.Query.Get("state") != state || len(res.Query["code"]) != 1 {
		t.Fatalf("authorization response: %v", res.Query)
	}
	return res.Query.Get("code"), verifier
}

// exchangeBurst redeems the codes at base from 8 goroutines and kills the
// process with SIGKILL once killAt exchanges were acknowledged (200 with
// tokens). It returns the number acknowledged.
func exchangeBurst(t *testing.T, client *http.Client, base, resource string, codes [][2]string, killAt int, c *caddy) int {
	t.Helper()
	ch := make(chan [2]string, len(codes))
	for _, cv := range codes {
		ch <- cv
	}
	close(ch)
	var (
		mu    sync.Mutex
		acked int
		once  sync.Once
		wg    sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cv := range ch {
				form := url.Values{"grant_type": {"authorization_code"}, "code": {cv[0]}, "redirect_uri": {cliRedirect},
					"code_verifier": {cv[1]}, "client_id": {cliClientID}, "resource": {resource}}
				resp, err := client.PostForm(base+"/token", form)
				ok := false
				if err == nil {
					var body struct {
						AccessToken string `json:"access_token"`
					}
					ok = resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&body) == nil && body.AccessToken != ""
					resp.Body.Close()
				}
				mu.Lock()
				if ok {
					acked++
				}
				kill := acked == killAt
				mu.Unlock()
				if kill {
					once.Do(func() {
						_ = c.cmd.Process.Kill() // SIGKILL: no graceful shutdown, no flush
						<-c.done
					})
				}
			}
		}()
	}
	wg.Wait()
	if !c.exited() {
		t.Fatal("the server was not killed")
	}
	return acked
}

// auditCount counts the token.issued events of the authorization_code
// grant through an instance's admin API.
func auditCount(t *testing.T, c *caddy) int {
	t.Helper()
	resp, err := http.Get("http://" + c.admin + "/mcp_auth/audit?type=token.issued&limit=1000")
	if err != nil {
		t.Fatalf("admin audit: %v", err)
	}
	defer resp.Body.Close()
	var evs []struct {
		Detail map[string]string `json:"detail"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&evs) != nil {
		t.Fatalf("admin audit: status %d", resp.StatusCode)
	}
	n := 0
	for _, e := range evs {
		if e.Detail["grant_type"] == "authorization_code" {
			n++
		}
	}
	return n
}

// TestAuditSurvivesSIGKILLBbolt: a burst of code exchanges against one
// bbolt instance, SIGKILLed mid-burst; after a restart the audit log has a
// token.issued record for every acknowledged exchange (before: events were
// batched in memory for 100 ms, and 0 of about 60 survived).
func TestAuditSurvivesSIGKILLBbolt(t *testing.T) {
	opts := stackOpts{}
	s := startStack(t, opts)
	b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	const n = 60
	codes := make([][2]string, 0, n)
	for range n {
		c, v := authCode(t, b, s.Issuer, s.MCPURL)
		codes = append(codes, [2]string{c, v})
	}
	acked := exchangeBurst(t, s.Client, s.Issuer, s.MCPURL, codes, n/2, s.caddy)
	s.caddy = startCaddy(t, s.dir, s.caddyfile(opts))
	waitHTTP(t, s.Client, s.Issuer+"/.well-known/oauth-authorization-server")
	got := auditCount(t, s.caddy)
	t.Logf("bbolt: %d exchanges acknowledged before and around the SIGKILL; %d token.issued records after restart", acked, got)
	if got < acked {
		t.Fatalf("%d token.issued records for %d acknowledged exchanges", got, acked)
	}
	if got > n {
		t.Fatalf("%d token.issued records for %d codes", got, n)
	}
}
