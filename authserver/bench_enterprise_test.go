package authserver

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// BenchmarkGrantExchanges measures the token endpoint's grants side by side
// in one run, on one server (bbolt with fsync, ES256 access tokens, 16
// concurrent clients over HTTP): the authorization-code exchange (a public
// client, the code minted beforehand), client_credentials with a client
// secret (argon2id) and with private_key_jwt (an ES256 assertion, jti
// recorded), and the ID-JAG JWT bearer grant (a confidential client's
// secret, or private_key_jwt; an RS256 ID-JAG, jti recorded, account
// mapping, a grant written). Every request
// writes: the code redemption or the new grant, and the jti.
//
//	go test -run '^$' -bench GrantExchanges -benchtime 2000x ./authserver/
func BenchmarkGrantExchanges(b *testing.B) {
	h := newEntHarnessSync(b, true, func(c *Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == "keyed" {
				c.Clients[i].GrantTypes = []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials}
			}
		}
	})
	ctx := context.Background()
	now := h.clock.Now()
	b.Run("authorization_code", func(b *testing.B) {
		bodies := make([]string, b.N)
		for i := range bodies {
			code := randomBenchToken(b)
			if err := h.store.SaveCode(ctx, storage.AuthCode{Hash: hashToken(code), ClientID: "app", RedirectURI: appRedirect,
				CodeChallenge: s256(testVerifier), CodeChallengeMethod: "S256", Subject: "alice", Scopes: []string{"read"},
				Resource: testResource, GrantID: randomBenchToken(b)[:22], CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				b.Fatal(err)
			}
			bodies[i] = h.exchangeForm("app", code, appRedirect, testVerifier).Encode()
		}
		benchTokenPosts(b, h.ts.URL, bodies)
	})
	b.Run("client_credentials_secret", func(b *testing.B) {
		body := url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"bot"}, "client_secret": {testSecret}, "resource": {testResource}}.Encode()
		bodies := make([]string, b.N)
		for i := range bodies {
			bodies[i] = body
		}
		benchTokenPosts(b, h.ts.URL, bodies)
	})
	b.Run("client_credentials_private_key_jwt", func(b *testing.B) {
		bodies := make([]string, b.N)
		for i := range bodies {
			bodies[i] = withAssertion(url.Values{"grant_type": {oauth.GrantClientCredentials}, "resource": {testResource}},
				h.assertionFor(h.keyed, "keyed", testJTI(b))).Encode()
		}
		benchTokenPosts(b, h.ts.URL, bodies)
	})
	b.Run("id_jag", func(b *testing.B) {
		bodies := make([]string, b.N)
		for i := range bodies {
			bodies[i] = bearerForm(h.idjag()).Encode()
		}
		benchTokenPosts(b, h.ts.URL, bodies)
	})
	b.Run("id_jag_private_key_jwt", func(b *testing.B) {
		bodies := make([]string, b.N)
		for i := range bodies {
			jag := h.idjag(func(c, _ map[string]any) { c["client_id"] = "keyed" })
			bodies[i] = withAssertion(url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {jag}},
				h.assertionFor(h.keyed, "keyed", testJTI(b))).Encode()
		}
		benchTokenPosts(b, h.ts.URL, bodies)
	})
}

// benchTokenPosts posts each body once to /token from 16 concurrent
// clients and reports the rate and latencies.
func benchTokenPosts(b *testing.B, base string, bodies []string) {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * benchClients, MaxConnsPerHost: 2 * benchClients}}
	defer client.CloseIdleConnections()
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  []time.Duration
	)
	b.SetParallelism(benchParallelism())
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			body := bodies[next.Add(1)-1]
			t0 := time.Now()
			resp, err := client.Post(base+"/token", "application/x-www-form-urlencoded", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d: %s", resp.StatusCode, msg)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatencies(b, lat, elapsed, "exchanges/s")
}
