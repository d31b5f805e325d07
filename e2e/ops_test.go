package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// opsCLI runs `caddy-mcpauth mcpauth <args> --address <admin>` as an
// operator does and returns its standard output.
func opsCLI(t *testing.T, s *stack, stdin string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, append(append([]string{"mcpauth"}, args...), "--address", s.caddy.admin)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), &opsCLIError{err: err, stderr: errb.String()}
	}
	return out.String(), nil
}

type opsCLIError struct {
	err    error
	stderr string
}

func (e *opsCLIError) Error() string { return e.err.Error() + ": " + e.stderr }

func opsMustCLI(t *testing.T, s *stack, args ...string) string {
	t.Helper()
	out, err := opsCLI(t, s, "", nil, args...)
	if err != nil {
		t.Fatalf("mcpauth %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// opsAdminJSON calls the admin API directly.
func opsAdminJSON(t *testing.T, s *stack, method, path, body string, into any) int {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+s.caddy.admin+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, leak := range []string{"$argon2", "secret_hash", "password_hash", "private_jwk", alicePassword} {
		if strings.Contains(string(b), leak) {
			t.Fatalf("%s %s answer contains %q", method, path, leak)
		}
	}
	if into != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// refresh posts a refresh_token grant and returns status, error code and body.
func opsRefresh(t *testing.T, s *stack, rt string) (int, string, map[string]any) {
	t.Helper()
	return postForm(t, s.Client, s.Issuer+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {cliClientID}})
}

// opsLoginAs runs the code flow for another account.
func opsLoginAs(t *testing.T, s *stack, email, password string) *oauth2.Token {
	t.Helper()
	conf := s.oauthConfig("todo:read", "offline_access")
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-"+email, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", s.MCPURL))
	b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	q := b.authorize(t, authURL, email, password).Query
	if q.Get("code") == "" {
		t.Fatalf("no code for %s: %v", email, q)
	}
	tok, err := conf.Exchange(s.ctx(), q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", s.MCPURL))
	if err != nil {
		t.Fatalf("exchange for %s: %v", email, err)
	}
	return tok
}

func opsJWKSKids(t *testing.T, s *stack) []string {
	t.Helper()
	resp, err := s.Client.Get(s.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		JWKSURI string `json:"jwks_uri"`
	}
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	resp, err = s.Client.Get(md.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		if _, ok := k["d"]; ok {
			t.Fatal("JWKS publishes a private key")
		}
		kids = append(kids, k["kid"].(string))
	}
	return kids
}

func opsTokenKid(t *testing.T, tok string) string {
	t.Helper()
	b, err := decodeSeg(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.Unmarshal(b, &h)
	kid, _ := h["kid"].(string)
	return kid
}

// TestOpsClientLifecycle: an operator lists, disables, enables and revokes
// the seeded client from the CLI of the running binary; each action takes
// effect at the token endpoint and at the guard at once.
func TestOpsClientLifecycle(t *testing.T) {
	s := startStack(t, stackOpts{})
	tok := s.login(t, s.oauthConfig("todo:read", "offline_access"))
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}

	out := opsMustCLI(t, s, "clients", "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) < 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(out, cliClientID) {
		t.Fatalf("clients list:\n%s", out)
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(opsMustCLI(t, s, "clients", "list", "--json")), &listed); err != nil || len(listed) == 0 {
		t.Fatalf("clients list --json: %v", err)
	}
	var shown map[string]any
	if st := opsAdminJSON(t, s, "GET", "/mcp_auth/clients/"+cliClientID, "", &shown); st != 200 || shown["active_grants"].(float64) < 1 {
		t.Fatalf("admin show: %d %v", st, shown)
	}
	if st := opsAdminJSON(t, s, "GET", "/mcp_auth/clients/no-such-client", "", nil); st != 404 {
		t.Fatalf("unknown client: %d", st)
	}
	if st := opsAdminJSON(t, s, "GET", "/mcp_auth/clients/"+cliClientID+"/disable", "", nil); st != 405 {
		t.Fatalf("GET disable: %d", st)
	}

	// Disable: refresh refused (client authentication fails), and the
	// guard refuses its access token.
	opsMustCLI(t, s, "clients", "disable", cliClientID)
	if st, code, _ := opsRefresh(t, s, tok.RefreshToken); st != 401 || code != "invalid_client" {
		t.Fatalf("refresh of a disabled client: %d %q, want 401 invalid_client", st, code)
	}
	if got := mcpStatus(t, s, tok.AccessToken); got != 401 {
		t.Fatalf("guard with a disabled client's token: %d, want 401", got)
	}
	if out := opsMustCLI(t, s, "clients", "show", cliClientID); !strings.Contains(out, "Disabled") || !strings.Contains(out, "yes") {
		t.Fatalf("show after disable:\n%s", out)
	}

	// Enable: the same tokens work again (disable is not revoke).
	opsMustCLI(t, s, "clients", "enable", cliClientID)
	if got := mcpStatus(t, s, tok.AccessToken); got != 200 {
		t.Fatalf("guard after enable: %d, want 200", got)
	}
	st, code, fresh := opsRefresh(t, s, tok.RefreshToken)
	if st != 200 {
		t.Fatalf("refresh after enable: %d %q", st, code)
	}
	access := fresh["access_token"].(string)
	rt := fresh["refresh_token"].(string)
	if got := mcpStatus(t, s, access); got != 200 {
		t.Fatalf("guard with a fresh token: %d", got)
	}

	// Revoke: every grant ends now; the access token is refused at once.
	out = opsMustCLI(t, s, "clients", "revoke", cliClientID)
	if !strings.Contains(out, "grants_revoked") {
		t.Fatalf("revoke:\n%s", out)
	}
	if got := mcpStatus(t, s, access); got != 401 {
		t.Fatalf("guard after revoke: %d, want 401", got)
	}
	if st, code, _ := opsRefresh(t, s, rt); st != 400 || code != "invalid_grant" {
		t.Fatalf("refresh after revoke: %d %q, want 400 invalid_grant", st, code)
	}
	// The client itself still works: a new login gets new tokens.
	tok2 := s.login(t, s.oauthConfig("todo:read"))
	if got := mcpStatus(t, s, tok2.AccessToken); got != 200 {
		t.Fatalf("guard with a token issued after revoke: %d", got)
	}

	out = opsMustCLI(t, s, "audit", "tail", "--limit", "200", "--type", "client.")
	for _, typ := range []string{"client.disabled", "client.enabled", "client.revoked"} {
		if !strings.Contains(out, typ) {
			t.Errorf("audit tail lacks %s:\n%s", typ, out)
		}
	}
}

// TestOpsUsersAuditKeys: users add/list/set-password from the CLI (the old
// refresh token is refused afterwards), the audit trail shows the events,
// and a key rotation publishes two keys while old tokens keep verifying.
func TestOpsUsersAuditKeys(t *testing.T) {
	s := startStack(t, stackOpts{})
	const bobEmail, bobPassword = "bob@example.com", "bobs-first-long-passphrase"

	out, err := opsCLI(t, s, bobPassword+"\n", nil, "users", "add", bobEmail, "--name", "Bob Builder", "--password-stdin")
	if err != nil || !strings.Contains(out, bobEmail) {
		t.Fatalf("users add: %v\n%s", err, out)
	}
	out = opsMustCLI(t, s, "users", "list")
	if !strings.Contains(out, bobEmail) || !strings.Contains(out, aliceEmail) || !strings.HasPrefix(out, "ID") {
		t.Fatalf("users list:\n%s", out)
	}
	if _, err := opsCLI(t, s, "short\n", nil, "users", "add", "weak@example.com", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("weak password accepted: %v", err)
	}
	if st := opsAdminJSON(t, s, "POST", "/mcp_auth/users", `{"email":"bob@example.com","password":"another-long-passphrase"}`, nil); st != 409 {
		t.Fatalf("duplicate user: %d", st)
	}

	bob := opsLoginAs(t, s, bobEmail, bobPassword)
	if got := mcpStatus(t, s, bob.AccessToken); got != 200 {
		t.Fatalf("bob at the guard: %d", got)
	}
	out, err = opsCLI(t, s, "", []string{"MCPAUTH_PASSWORD=bobs-second-long-passphrase"}, "users", "set-password", bobEmail)
	if err != nil || !strings.Contains(out, "grants_revoked") {
		t.Fatalf("set-password: %v\n%s", err, out)
	}
	if st, code, _ := opsRefresh(t, s, bob.RefreshToken); st != 400 || code != "invalid_grant" {
		t.Fatalf("old refresh token after a password change: %d %q, want 400 invalid_grant", st, code)
	}
	if got := mcpStatus(t, s, bob.AccessToken); got != 401 {
		t.Fatalf("old access token after a password change: %d, want 401", got)
	}
	bob2 := opsLoginAs(t, s, bobEmail, "bobs-second-long-passphrase")
	if got := mcpStatus(t, s, bob2.AccessToken); got != 200 {
		t.Fatalf("bob with the new password: %d", got)
	}

	// Keys: rotation publishes two keys; a token signed before still verifies.
	before := opsJWKSKids(t, s)
	if len(before) != 1 {
		t.Fatalf("JWKS before rotation: %v", before)
	}
	alice := s.login(t, s.oauthConfig("todo:read"))
	if opsTokenKid(t, alice.AccessToken) != before[0] {
		t.Fatal("token not signed by the published key")
	}
	out = opsMustCLI(t, s, "keys", "rotate")
	if strings.Count(out, "ES256") != 2 {
		t.Fatalf("keys rotate:\n%s", out)
	}
	after := opsJWKSKids(t, s)
	if len(after) != 2 {
		t.Fatalf("JWKS after rotation: %v", after)
	}
	if got := mcpStatus(t, s, alice.AccessToken); got != 200 {
		t.Fatalf("token signed by the retired key: %d, want 200", got)
	}
	// The rotated-in key is published first (key_prepublish): tokens are
	// still signed by the current key until it activates.
	alice2 := s.login(t, s.oauthConfig("todo:read"))
	if kid := opsTokenKid(t, alice2.AccessToken); kid != before[0] {
		t.Fatalf("a token right after a pre-published rotation has kid %q, want the current key %q; JWKS %v", kid, before[0], after)
	}
	var keys []map[string]any
	if st := opsAdminJSON(t, s, "GET", "/mcp_auth/keys", "", &keys); st != 200 || len(keys) != 2 {
		t.Fatalf("admin keys: %d %v", st, keys)
	}
	pending := 0
	for _, k := range keys {
		if k["activates_at"] != nil {
			pending++
		}
	}
	if pending != 1 {
		t.Fatalf("admin keys: want one pre-published key with activates_at: %v", keys)
	}
	// --now signs at once (the disruptive rotation).
	opsMustCLI(t, s, "keys", "rotate", "--now")
	now := opsJWKSKids(t, s)
	alice3 := s.login(t, s.oauthConfig("todo:read"))
	kid := opsTokenKid(t, alice3.AccessToken)
	if kid == before[0] || !slices.Contains(now, kid) {
		t.Fatalf("after keys rotate --now the token kid is %q; JWKS %v", kid, now)
	}
	if got := mcpStatus(t, s, alice3.AccessToken); got != 200 {
		t.Fatalf("token signed by the new key: %d", got)
	}
	if got := mcpStatus(t, s, alice2.AccessToken); got != 200 {
		t.Fatalf("token signed by the retired key after --now: %d, want 200", got)
	}

	out = opsMustCLI(t, s, "audit", "tail", "--limit", "500")
	for _, typ := range []string{"account.created", "account.password_changed", "subject.revoked", "keys.rotated", "login.success", "token.issued"} {
		if !strings.Contains(out, typ) {
			t.Errorf("audit tail lacks %s:\n%s", typ, out)
		}
	}
	for _, leak := range []string{bobPassword, "bobs-second-long-passphrase", bob.RefreshToken, bob.AccessToken} {
		if strings.Contains(out, leak) {
			t.Fatal("audit trail contains a secret")
		}
	}
	var evs []map[string]any
	if err := json.Unmarshal([]byte(opsMustCLI(t, s, "audit", "tail", "--type", "keys.rotated", "--json")), &evs); err != nil || len(evs) != 2 {
		t.Fatalf("audit --json: want the two rotations: %v %v", err, evs)
	}
}

// TestOpsCLIErrors: a clear error when the admin API is not there.
func TestOpsCLIErrors(t *testing.T) {
	binaries(t)
	addr := "127.0.0.1:1" // nothing listens on port 1
	cmd := exec.Command(caddyBin, "mcpauth", "clients", "list", "--address", addr)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot reach the admin API at "+addr) {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}

// TestOpsMetrics: Caddy's metrics endpoint exports the app's counters.
func TestOpsMetrics(t *testing.T) {
	s := startStack(t, stackOpts{})
	tok := s.login(t, s.oauthConfig("todo:read"))
	mcpStatus(t, s, tok.AccessToken)
	mcpStatus(t, s, "")
	resp, err := http.Get("http://" + s.caddy.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mcpauth_tokens_issued_total{grant_type="authorization_code"} 1`,
		`mcpauth_login_attempts_total{result="success"} 1`,
		`mcpauth_guard_decisions_total{outcome="allowed"}`,
		`mcpauth_guard_decisions_total{outcome="no_token"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(b), cliClientID) {
		t.Error("a client id is a metric label")
	}
}

// TestOpsAfterReload: after `caddy reload` the admin routes act on the new
// config's app (same store), and a disable still reaches the guard.
func TestOpsAfterReload(t *testing.T) {
	s := startStack(t, stackOpts{})
	tok := s.login(t, s.oauthConfig("todo:read"))
	s.caddy.reload(t, s.caddyfile(stackOpts{productName: "Ops Reloaded"}))
	if out := opsMustCLI(t, s, "clients", "list"); !strings.Contains(out, cliClientID) {
		t.Fatalf("clients list after reload:\n%s", out)
	}
	opsMustCLI(t, s, "clients", "disable", cliClientID)
	if got := mcpStatus(t, s, tok.AccessToken); got != 401 {
		t.Fatalf("guard after disable on the reloaded config: %d, want 401", got)
	}
	opsMustCLI(t, s, "clients", "enable", cliClientID)
	if got := mcpStatus(t, s, tok.AccessToken); got != 200 {
		t.Fatalf("guard after enable: %d, want 200", got)
	}
}
