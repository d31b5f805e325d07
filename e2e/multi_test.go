package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mcpauth/caddy-mcpauth/internal/opscli"
	"github.com/mcpauth/caddy-mcpauth/internal/pgtest"
	"golang.org/x/oauth2"
)

// multiDSN returns the DSN of a fresh PostgreSQL schema (dropped at the
// end) for a multi-instance test: MCPAUTH_TEST_POSTGRES_DSN with its
// search_path pointing at the schema. Without the variable the test fails
// when CI=true and is skipped, saying why, otherwise.
func multiDSN(t *testing.T) string {
	t.Helper()
	dsn := pgtest.DSN(t, "the multi-instance tests", "scripts/pg-test.sh run go test -run Multi ./e2e/")
	schema := pgtest.Schema("mcpauth_e2e_")
	exec := func(q string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, q)
		return err
	}
	if err := exec(`CREATE SCHEMA ` + pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(`DROP SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// multiCaddyfile is one instance: the mcp_auth app on the shared database
// with the shared issuer, serving the authorization server and the guard
// in front of the sample server on its own port.
func multiCaddyfile(issuer string, port int, todoAddr string, extraApp ...string) string {
	return fmt.Sprintf(`{
	admin {ADMIN}
	skip_install_trust
	local_certs
	auto_https disable_redirects
	persist_config off
	mcp_auth {
		issuer %[1]s
		storage postgres {env.MCPAUTH_E2E_DSN}
		scopes todo:read todo:write
		default_scopes todo:read
		login {
			product_name "Todo MCP"
			user %[2]s %[3]s "Alice Example"
		}
		client %[4]s {
			name "CLI App"
			redirect_uri http://127.0.0.1/callback
			skip_consent
		}
		dpop
		%[7]s
	}
}

https://localhost:%[5]d {
	tls internal
	mcp_auth_server
	mcp_protect /mcp* {
		scopes todo:read
	}
	reverse_proxy /mcp* %[6]s {
		flush_interval -1
	}
}
`, issuer, aliceEmail, alicePassword, cliClientID, port, todoAddr, strings.Join(extraApp, "\n\t\t"))
}

// instance is one caddy-mcpauth process of the pair.
type instance struct {
	name      string
	caddy     *caddy
	dir       string
	port      int
	base      string // https://localhost:<port>
	caddyfile string
	env       []string
}

func (in *instance) start(t *testing.T) {
	t.Helper()
	in.caddy = startCaddy(t, in.dir, in.caddyfile, in.env...)
}

// rootPEM waits for the instance's internal CA root.
func (in *instance) rootPEM(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(in.dir, "data", "caddy", "pki", "authorities", "local", "root.crt")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(p)
		if err == nil && len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: internal CA root never appeared at %s: %v", in.name, p, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pair is two instances on one database, both configured with A's issuer.
type pair struct {
	A, B     *instance
	Issuer   string
	MCPURL   string // the resource both guards protect (A's origin)
	Client   *http.Client
	dsn      string
	todoAddr string
}

func startPair(t *testing.T, extraApp ...string) *pair {
	t.Helper()
	binaries(t)
	dsn := multiDSN(t)
	todoAddr, _ := startTodo(t)
	p := &pair{dsn: dsn, todoAddr: todoAddr}
	pa, pb := freePort(t), freePort(t)
	p.Issuer = fmt.Sprintf("https://localhost:%d", pa)
	p.MCPURL = p.Issuer + "/mcp"
	env := []string{"MCPAUTH_E2E_DSN=" + dsn}
	p.A = &instance{name: "A", dir: t.TempDir(), port: pa, base: p.Issuer, env: env,
		caddyfile: multiCaddyfile(p.Issuer, pa, todoAddr, extraApp...)}
	p.B = &instance{name: "B", dir: t.TempDir(), port: pb, base: fmt.Sprintf("https://localhost:%d", pb), env: env,
		caddyfile: multiCaddyfile(p.Issuer, pb, todoAddr, extraApp...)}
	// A first: it creates the schema and the first signing key; B finds them.
	p.A.start(t)
	p.B.start(t)
	pool := x509.NewCertPool()
	for _, in := range []*instance{p.A, p.B} {
		if !pool.AppendCertsFromPEM(in.rootPEM(t)) {
			t.Fatalf("%s: bad CA root", in.name)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	tr.MaxIdleConnsPerHost = 32
	p.Client = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	waitHTTP(t, p.Client, p.A.base+"/.well-known/oauth-authorization-server")
	waitHTTP(t, p.Client, p.B.base+"/.well-known/oauth-authorization-server")
	return p
}

// code runs the authorization request at A through the hosted login (the
// browser keeps its session, so later calls skip the login) and returns a
// code and its PKCE verifier.
func (p *pair) code(t *testing.T, b *browser) (code, verifier string) {
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
		"resource":              {p.MCPURL},
	}
	res := b.authorize(t, p.Issuer+"/authorize?"+q.Encode(), aliceEmail, alicePassword)
	if e := res.Query.Get("error"); e != "" {
		t.Fatalf("authorization error: %s %s", e, res.Query.Get("error_description"))
	}
	if res.Query.Get("state") != state || len(res.Query["code"]) != 1 {
		t.Fatalf("authorization response: %v", res.Query)
	}
	return res.Query.Get("code"), verifier
}

// tokens is a token endpoint answer.
type tokens struct {
	status  int
	errCode string
	access  string
	refresh string
}

func (p *pair) token(t *testing.T, base string, form url.Values) tokens {
	t.Helper()
	st, errCode, m := postForm(t, p.Client, base+"/token", form)
	access, _ := m["access_token"].(string)
	refresh, _ := m["refresh_token"].(string)
	return tokens{status: st, errCode: errCode, access: access, refresh: refresh}
}

func (p *pair) exchange(t *testing.T, base, code, verifier string) tokens {
	t.Helper()
	return p.token(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cliRedirect},
		"code_verifier": {verifier}, "client_id": {cliClientID}, "resource": {p.MCPURL}})
}

func (p *pair) refresh(t *testing.T, base, rt string) tokens {
	t.Helper()
	return p.token(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {cliClientID}})
}

// mcp calls the guarded MCP endpoint of an instance and returns the status.
func (p *pair) mcp(t *testing.T, in *instance, token string) int {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
	req, _ := http.NewRequest("POST", in.base+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := p.Client.Do(req)
	if err != nil {
		t.Fatalf("%s /mcp: %v", in.name, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// kids returns the sorted key ids an instance publishes.
func (p *pair) kids(t *testing.T, in *instance) []string {
	t.Helper()
	resp, err := p.Client.Get(in.base + "/jwks.json")
	if err != nil {
		t.Fatalf("%s jwks: %v", in.name, err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s jwks: status %d", in.name, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("%s jwks: %v", in.name, err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	slices.Sort(out)
	return out
}

func tokenKid(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS")
	}
	raw, err := decodeSeg(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// TestMultiInstance runs two caddy-mcpauth processes on different ports
// sharing one PostgreSQL database and one issuer (as behind a load
// balancer) and checks that they behave as one authorization server.
func TestMultiInstance(t *testing.T) {
	p := startPair(t)
	b := newBrowser(t, p.Client, "http://127.0.0.1:5555/")

	t.Run("SameJWKS", func(t *testing.T) {
		a, bb := p.kids(t, p.A), p.kids(t, p.B)
		if len(a) == 0 || !slices.Equal(a, bb) {
			t.Fatalf("JWKS differ: A %v, B %v", a, bb)
		}
	})

	var first tokens
	t.Run("CodeFromARedeemedAtB", func(t *testing.T) {
		code, verifier := p.code(t, b)
		first = p.exchange(t, p.B.base, code, verifier)
		if first.status != 200 || first.access == "" || first.refresh == "" {
			t.Fatalf("exchange at B: %d %s", first.status, first.errCode)
		}
		if c := jwtClaims(t, first.access); c["iss"] != p.Issuer || c["client_id"] != cliClientID {
			t.Fatalf("claims: %v", c)
		}
		// The code is consumed for both: replaying it at A is refused.
		if r := p.exchange(t, p.A.base, code, verifier); r.status != 400 || r.errCode != "invalid_grant" {
			t.Fatalf("code replay at A: %d %s, want 400 invalid_grant", r.status, r.errCode)
		}
		for _, in := range []*instance{p.A, p.B} {
			if st := p.mcp(t, in, first.access); st != 401 {
				// The replay revoked what the first redemption produced.
				t.Fatalf("%s guard after code replay: %d, want 401", in.name, st)
			}
		}
	})

	t.Run("DPoPProofReplayedAtB", func(t *testing.T) { multiDPoPReplay(t, p, b) }) // dpop_test.go

	t.Run("RefreshReuseAcrossInstances", func(t *testing.T) {
		code, verifier := p.code(t, b)
		t0 := p.exchange(t, p.A.base, code, verifier)
		if t0.status != 200 {
			t.Fatalf("exchange at A: %d %s", t0.status, t0.errCode)
		}
		t1 := p.refresh(t, p.A.base, t0.refresh)
		t2 := p.refresh(t, p.A.base, t1.refresh)
		if t1.status != 200 || t2.status != 200 {
			t.Fatalf("rotations at A: %d %s, %d %s", t1.status, t1.errCode, t2.status, t2.errCode)
		}
		for _, in := range []*instance{p.A, p.B} {
			if st := p.mcp(t, in, t2.access); st != 200 {
				t.Fatalf("%s guard with the current token: %d, want 200", in.name, st)
			}
		}
		// The first refresh token, rotated out twice at A, replayed at B.
		if r := p.refresh(t, p.B.base, t0.refresh); r.status != 400 || r.errCode != "invalid_grant" {
			t.Fatalf("replay at B: %d %s, want 400 invalid_grant", r.status, r.errCode)
		}
		// The family is revoked everywhere.
		if r := p.refresh(t, p.A.base, t2.refresh); r.status != 400 || r.errCode != "invalid_grant" {
			t.Fatalf("current token at A after reuse: %d %s, want 400 invalid_grant", r.status, r.errCode)
		}
		for _, in := range []*instance{p.A, p.B} {
			if st := p.mcp(t, in, t2.access); st != 401 {
				t.Fatalf("%s guard after reuse: %d, want 401", in.name, st)
			}
		}
	})

	t.Run("KilledInstanceLosesNothingAcknowledged", func(t *testing.T) {
		const n = 48
		auditBefore := auditCount(t, p.B.caddy)
		type minted struct{ code, verifier string }
		codes := make(chan minted, n)
		for range n {
			c, v := p.code(t, b)
			codes <- minted{c, v}
		}
		close(codes)
		var (
			mu    sync.Mutex
			acked []string // refresh tokens of exchanges A answered 200
			other []minted // answered otherwise or not at all
			once  sync.Once
			wg    sync.WaitGroup
		)
		killAt := n / 3
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for m := range codes {
					form := url.Values{"grant_type": {"authorization_code"}, "code": {m.code}, "redirect_uri": {cliRedirect},
						"code_verifier": {m.verifier}, "client_id": {cliClientID}, "resource": {p.MCPURL}}
					resp, err := p.Client.PostForm(p.A.base+"/token", form)
					var body struct {
						RefreshToken string `json:"refresh_token"`
					}
					ok := err == nil && resp.StatusCode == 200
					if err == nil {
						ok = ok && json.NewDecoder(resp.Body).Decode(&body) == nil && body.RefreshToken != ""
						resp.Body.Close()
					}
					mu.Lock()
					if ok {
						acked = append(acked, body.RefreshToken)
					} else {
						other = append(other, m)
					}
					kill := len(acked) == killAt
					mu.Unlock()
					if kill {
						once.Do(func() {
							_ = p.A.caddy.cmd.Process.Kill() // SIGKILL: no graceful shutdown
							<-p.A.caddy.done
						})
					}
				}
			}()
		}
		wg.Wait()
		if len(acked) < killAt {
			t.Fatalf("only %d exchanges acknowledged before the kill", len(acked))
		}
		if !p.A.caddy.exited() {
			t.Fatal("A was not killed")
		}
		t.Logf("A killed after %d acknowledged exchanges; %d acknowledged in all, %d not", killAt, len(acked), len(other))
		// Every acknowledged exchange has its token.issued record: it was
		// written in the transaction of the grant (before: 3-26 of 31).
		if got := auditCount(t, p.B.caddy) - auditBefore; got < len(acked) || got > n {
			t.Fatalf("%d token.issued records for %d acknowledged exchanges (of %d)", got, len(acked), n)
		} else {
			t.Logf("PostgreSQL: %d token.issued records for %d acknowledged exchanges", got, len(acked))
		}
		// Every acknowledged exchange's grant is there: its refresh token works at B.
		for i, rt := range acked {
			if r := p.refresh(t, p.B.base, rt); r.status != 200 {
				t.Fatalf("acknowledged exchange %d: refresh at B %d %s, want 200", i, r.status, r.errCode)
			}
		}
		// An exchange cut off by the kill either committed (its code is
		// used: invalid_grant) or did not (the code still redeems once):
		// never a half-written state.
		for i, m := range other {
			r := p.exchange(t, p.B.base, m.code, m.verifier)
			if r.status != 200 && (r.status != 400 || r.errCode != "invalid_grant") {
				t.Fatalf("unacknowledged exchange %d redeemed at B: %d %s, want 200 or 400 invalid_grant", i, r.status, r.errCode)
			}
		}
	})

	// Bring A back (same ports, same database) for the rest.
	if !p.A.caddy.exited() {
		t.Fatal("A should have been killed by the previous subtest")
	}
	p.A.start(t)
	waitHTTP(t, p.Client, p.A.base+"/.well-known/oauth-authorization-server")

	t.Run("KeyRotationSeenByTheOtherInstance", func(t *testing.T) {
		before := p.kids(t, p.B)
		// An operator rotates on A at once (keys rotate --now, the
		// disruptive path): A signs with the new key at once; B has never
		// loaded it. (The default, pre-published rotation is
		// TestMultiInstanceKeyPrePublication.)
		adminPost(t, p.A, "/mcp_auth/keys/rotate?now=true")
		code, verifier := p.code(t, b)
		tok := p.exchange(t, p.A.base, code, verifier)
		if tok.status != 200 {
			t.Fatalf("exchange at A: %d %s", tok.status, tok.errCode)
		}
		kid := tokenKid(t, tok.access)
		if slices.Contains(before, kid) {
			t.Fatalf("A signs with %s, a key B already had: the rotation did not take", kid)
		}
		// B has never loaded that key: its guard reloads on the unknown kid
		// and accepts the token at once (no waiting for the 1m reload).
		if st := p.mcp(t, p.B, tok.access); st != 200 {
			t.Fatalf("B guard with a token signed by the rotated key: %d, want 200", st)
		}
		if a, bb := p.kids(t, p.A), p.kids(t, p.B); !slices.Equal(a, bb) || !slices.Contains(bb, kid) {
			t.Fatalf("JWKS after rotation: A %v, B %v (new kid %s)", a, bb, kid)
		}
		// Tokens B still signs with the retired key verify at A.
		code, verifier = p.code(t, b)
		tb := p.exchange(t, p.B.base, code, verifier)
		if tb.status != 200 {
			t.Fatalf("exchange at B: %d %s", tb.status, tb.errCode)
		}
		if st := p.mcp(t, p.A, tb.access); st != 200 {
			t.Fatalf("A guard with B's token (kid %s): %d, want 200", tokenKid(t, tb.access), st)
		}
	})

	t.Run("ClientDisabledOnBRefusedOnA", func(t *testing.T) {
		code, verifier := p.code(t, b)
		tok := p.exchange(t, p.A.base, code, verifier)
		if tok.status != 200 || p.mcp(t, p.A, tok.access) != 200 {
			t.Fatalf("exchange at A: %d %s", tok.status, tok.errCode)
		}
		disableClient(t, p, cliClientID)
		if r := p.refresh(t, p.A.base, tok.refresh); r.status != 401 || r.errCode != "invalid_client" {
			t.Fatalf("refresh at A for the disabled client: %d %s, want 401 invalid_client", r.status, r.errCode)
		}
		for _, in := range []*instance{p.A, p.B} {
			if st := p.mcp(t, in, tok.access); st != 401 {
				t.Fatalf("%s guard with the disabled client's token: %d, want 401", in.name, st)
			}
		}
	})
}

// adminPost posts to an instance's admin API and requires a 2xx answer.
func adminPost(t *testing.T, in *instance, path string) {
	t.Helper()
	resp, err := http.Post("http://"+in.caddy.admin+path, "application/json", nil)
	if err != nil {
		t.Fatalf("%s admin API %s: %v", in.name, path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s admin API %s: %d %s", in.name, path, resp.StatusCode, body)
	}
}

// disableClient disables a client as an operator does on instance B,
// through B's admin API.
func disableClient(t *testing.T, p *pair, id string) {
	t.Helper()
	adminPost(t, p.B, "/mcp_auth/clients/"+url.PathEscape(id)+"/disable")
}

// TestMigrateBboltInstallationToPostgres moves a running bbolt installation
// to PostgreSQL as an operator does: stop the server, migrate-store, start
// it on the database. Users notice nothing: the same keys sign and are
// published, an access token issued before still passes the guard and the
// refresh token issued before still rotates.
func TestMigrateBboltInstallationToPostgres(t *testing.T) {
	dsn := multiDSN(t)
	s := startStack(t, stackOpts{})
	conf := s.oauthConfig("todo:read", "offline_access")
	tok := s.login(t, conf)
	in := &instance{name: "bbolt", caddy: s.caddy, base: s.Issuer}
	p := &pair{Client: s.Client, Issuer: s.Issuer, MCPURL: s.MCPURL}
	kidsBefore := p.kids(t, in)
	s.caddy.stop()

	var out strings.Builder
	if _, err := opscli.MigrateStore(t.Context(), opscli.MigrateOptions{
		From: "bbolt:" + filepath.Join(s.dir, "mcpauth.db"), To: "postgres:" + dsn, Out: &out,
	}); err != nil {
		t.Fatalf("migrate-store: %v\n%s", err, out.String())
	}
	t.Logf("migrate-store:\n%s", out.String())

	in.caddy = startCaddy(t, s.dir, multiCaddyfile(s.Issuer, s.port, s.todoAddr), "MCPAUTH_E2E_DSN="+dsn)
	waitHTTP(t, s.Client, s.Issuer+"/.well-known/oauth-authorization-server")
	if got := p.kids(t, in); !slices.Equal(got, kidsBefore) {
		t.Fatalf("JWKS after the move %v, before %v", got, kidsBefore)
	}
	if st := p.mcp(t, in, tok.AccessToken); st != 200 {
		t.Fatalf("guard with a token issued before the move: %d, want 200", st)
	}
	r := p.refresh(t, s.Issuer, tok.RefreshToken)
	if r.status != 200 || r.refresh == "" {
		t.Fatalf("refresh with a token issued before the move: %d %s", r.status, r.errCode)
	}
	if st := p.mcp(t, in, r.access); st != 200 {
		t.Fatalf("guard with a token issued after the move: %d, want 200", st)
	}
	// The rotated-out token is still recognized as reuse.
	if r2 := p.refresh(t, s.Issuer, r.refresh); r2.status != 200 {
		t.Fatalf("second refresh: %d %s", r2.status, r2.errCode)
	}
	if r3 := p.refresh(t, s.Issuer, tok.RefreshToken); r3.status != 400 || r3.errCode != "invalid_grant" {
		t.Fatalf("replay of the pre-move token: %d %s, want 400 invalid_grant", r3.status, r3.errCode)
	}
}
