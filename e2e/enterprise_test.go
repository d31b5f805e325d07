package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// testEnterpriseIdP is an enterprise IdP written for the tests, with real
// keys: RFC 8414 and OpenID discovery documents, a JWKS, an ID-token step
// (the resource owner password grant stands in for the employee's SSO
// login) and an RFC 8693 token-exchange endpoint that mints ID-JAGs for
// the MCP client it registered (ext-auth enterprise-managed-authorization
// §4). It can also mint workload tokens as an OIDC-discoverable workload
// issuer (a Kubernetes API server's service-account tokens).
type testEnterpriseIdP struct {
	*httptest.Server
	key       *rsa.PrivateKey
	kid       string
	clientID  string // the MCP client's id at the IdP (and at the MCP AS)
	secret    string // its IdP client secret
	users     map[string]string
	exchanges atomic.Int64
	mu        sync.Mutex
	down      bool
}

func startEnterpriseIdP(t *testing.T, clientID string) *testEnterpriseIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	idp := &testEnterpriseIdP{key: key, kid: "idp-" + randHex(4), clientID: clientID, secret: "idp-secret-" + randHex(8),
		users: map[string]string{"alice@acme.test": "00u-alice"}}
	mux := http.NewServeMux()
	meta := func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{
			"issuer": idp.URL, "authorization_endpoint": idp.URL + "/authorize", "token_endpoint": idp.URL + "/token",
			"jwks_uri": idp.URL + "/jwks", "code_challenge_methods_supported": []string{"S256"},
			"grant_types_supported":    []string{"password", "urn:ietf:params:oauth:grant-type:token-exchange"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	}
	mux.HandleFunc("/.well-known/oauth-authorization-server", meta)
	mux.HandleFunc("/.well-known/openid-configuration", meta)
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		pub, _ := jwk.FromRaw(&key.PublicKey)
		_ = pub.Set(jwk.KeyIDKey, idp.kid)
		_ = pub.Set(jwk.AlgorithmKey, "RS256")
		_ = pub.Set(jwk.KeyUsageKey, "sig")
		w.Header().Set("Cache-Control", "max-age=1")
		writeJSONResp(w, 200, map[string]any{"keys": []any{pub}})
	})
	mux.HandleFunc("/token", idp.token)
	idp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idp.mu.Lock()
		down := idp.down
		idp.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(idp.Close)
	return idp
}

func (idp *testEnterpriseIdP) setDown(v bool) { idp.mu.Lock(); idp.down = v; idp.mu.Unlock() }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSONResp(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// sign signs claims with the IdP's key and the given JOSE typ.
func (idp *testEnterpriseIdP) sign(t testing.TB, typ string, claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, idp.kid)
	_ = h.Set(jws.TypeKey, typ)
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256, idp.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (idp *testEnterpriseIdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSONResp(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	if r.PostForm.Get("client_id") != idp.clientID || r.PostForm.Get("client_secret") != idp.secret {
		writeJSONResp(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	now := time.Now()
	switch r.PostForm.Get("grant_type") {
	case "password": // the ID-token step (the employee's SSO sign-in)
		sub, ok := idp.users[r.PostForm.Get("username")]
		if !ok || r.PostForm.Get("password") != "correct horse" {
			writeJSONResp(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		idt := idp.sign(nil, "JWT", map[string]any{"iss": idp.URL, "sub": sub, "aud": idp.clientID, "email": r.PostForm.Get("username"),
			"email_verified": true, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
		writeJSONResp(w, 200, map[string]any{"access_token": "idp-at-" + randHex(8), "token_type": "Bearer", "expires_in": 600, "id_token": idt})
	case "urn:ietf:params:oauth:grant-type:token-exchange": // RFC 8693 → ID-JAG
		f := r.PostForm
		if f.Get("requested_token_type") != "urn:ietf:params:oauth:token-type:id-jag" || f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token" {
			writeJSONResp(w, 400, map[string]string{"error": "invalid_request"})
			return
		}
		// Validate the subject token (the IdP's own ID token for this client).
		msg, err := jws.Verify([]byte(f.Get("subject_token")), jws.WithKey(jwa.RS256, &idp.key.PublicKey))
		var idt map[string]any
		if err != nil || json.Unmarshal(msg, &idt) != nil || idt["aud"] != idp.clientID || idt["iss"] != idp.URL {
			writeJSONResp(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Audience validation failed"})
			return
		}
		idp.exchanges.Add(1)
		jag := idp.sign(nil, "oauth-id-jag+jwt", map[string]any{"iss": idp.URL, "sub": idt["sub"], "aud": f.Get("audience"),
			"resource": f.Get("resource"), "client_id": idp.clientID, "jti": randHex(16), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
			"scope": f.Get("scope"), "email": idt["email"]})
		writeJSONResp(w, 200, map[string]any{"issued_token_type": "urn:ietf:params:oauth:token-type:id-jag", "access_token": jag,
			"token_type": "N_A", "scope": f.Get("scope"), "expires_in": 300})
	default:
		writeJSONResp(w, 400, map[string]string{"error": "unsupported_grant_type"})
	}
}

const (
	entClientID     = "claude-enterprise"
	entClientSecret = "ent-client-secret-0123456789"
	agentClientID   = "nightly-agent"
	agentSecret     = "agent-secret-0123456789abcdef"
	wlClientID      = "cluster-agent"
	wlSubject       = "system:serviceaccount:agents:reporter"
)

// enterpriseStack is a stack with an enterprise IdP (ID-JAG), a machine
// client with a secret, and the IdP also trusted as a workload issuer.
func enterpriseStack(t *testing.T, wl *testEnterpriseIdP) (*stack, *testEnterpriseIdP) {
	t.Helper()
	idp := startEnterpriseIdP(t, entClientID)
	extra := fmt.Sprintf(`client %s {
			secret %s
			redirect_uri http://127.0.0.1/callback
		}
		client %s {
			secret %s
			grant_types client_credentials
			scopes todo:read
		}
		client %s {
			grant_types client_credentials
			scopes todo:read
		}
		enterprise_idp acme {
			issuer %s
			clients %s
			scope_map mcp.read todo:read
			subject by_sub
			provision on
		}
		workload_issuer k8s {
			issuer %s
			client %s %s
		}`, entClientID, entClientSecret, agentClientID, agentSecret, wlClientID, idp.URL, entClientID, wl.URL, wlSubject, wlClientID)
	return startStack(t, stackOpts{extraApp: extra}), idp
}

// TestGoSDKEnterpriseIDJAG: the Go SDK's extauth.EnterpriseHandler gets an
// ID token from the enterprise IdP, exchanges it there (RFC 8693) for an
// ID-JAG, trades that at our /token (JWT bearer grant) and calls a guarded
// tool, with no browser and no consent page. The metadata advertises the
// ID-JAG profile. A replay of the ID-JAG, a wrong client and an ID-JAG for
// another resource are refused.
func TestGoSDKEnterpriseIDJAG(t *testing.T) {
	wl := startEnterpriseIdP(t, "unused")
	s, idp := enterpriseStack(t, wl)

	resp, err := s.Client.Get(s.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if fmt.Sprint(md["authorization_grant_profiles_supported"]) != "[urn:ietf:params:oauth:grant-profile:id-jag]" ||
		!strings.Contains(fmt.Sprint(md["grant_types_supported"]), "urn:ietf:params:oauth:grant-type:jwt-bearer") ||
		!strings.Contains(fmt.Sprint(md["grant_types_supported"]), "client_credentials") {
		t.Fatalf("metadata: %v", md)
	}

	idpCreds := &oauthex.ClientCredentials{ClientID: entClientID, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: idp.secret}}
	fetchIDToken := func(ctx context.Context) (*oauth2.Token, error) {
		conf := &oauth2.Config{ClientID: entClientID, ClientSecret: idp.secret, Endpoint: oauth2.Endpoint{TokenURL: idp.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
		return conf.PasswordCredentialsToken(ctx, "alice@acme.test", "correct horse")
	}
	h, err := extauth.NewEnterpriseHandler(&extauth.EnterpriseHandlerConfig{
		IdPIssuerURL:     idp.URL,
		IdPCredentials:   idpCreds,
		MCPAuthServerURL: s.Issuer,
		MCPResourceURI:   s.MCPURL,
		MCPCredentials:   &oauthex.ClientCredentials{ClientID: entClientID, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: entClientSecret}},
		MCPScopes:        []string{"mcp.read"},
		IDTokenFetcher:   fetchIDToken,
		HTTPClient:       s.Client,
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-enterprise", Version: "1.0.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.MCPURL, HTTPClient: s.Client, OAuthHandler: h}, nil)
	if err != nil {
		t.Fatalf("Go SDK connect with an ID-JAG: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	who := toolJSON(t, res)
	if !strings.Contains(who, entClientID) || !strings.Contains(who, "todo:read") {
		t.Fatalf("upstream saw %s", who)
	}
	if idp.exchanges.Load() != 1 {
		t.Fatalf("token exchanges at the IdP: %d", idp.exchanges.Load())
	}

	// Negatives against the built binary.
	exchange := func(jag string, form url.Values) (int, map[string]any) {
		t.Helper()
		f := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {jag},
			"client_id": {entClientID}, "client_secret": {entClientSecret}}
		for k, v := range form {
			f[k] = v
		}
		resp, err := s.Client.PostForm(s.Issuer+"/token", f)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	now := time.Now()
	jag := func(mod func(map[string]any)) string {
		c := map[string]any{"iss": idp.URL, "sub": "00u-alice", "aud": s.Issuer, "resource": s.MCPURL, "client_id": entClientID,
			"jti": randHex(12), "iat": now.Unix(), "exp": now.Add(4 * time.Minute).Unix(), "scope": "mcp.read"}
		if mod != nil {
			mod(c)
		}
		return idp.sign(t, "oauth-id-jag+jwt", c)
	}
	good := jag(nil)
	if st, m := exchange(good, nil); st != 200 || m["refresh_token"] != nil {
		t.Fatalf("direct exchange: %d %v", st, m)
	}
	for _, tc := range []struct {
		name, jag, code string
		status          int
	}{
		{"replay", good, "invalid_grant", 400},
		{"another resource", jag(func(c map[string]any) { c["resource"] = "https://elsewhere.test/mcp" }), "invalid_target", 400},
		{"another client", jag(func(c map[string]any) { c["client_id"] = agentClientID }), "invalid_grant", 400},
		{"wrong audience", jag(func(c map[string]any) { c["aud"] = "https://other-as.test" }), "invalid_grant", 400},
		{"expired", jag(func(c map[string]any) {
			c["exp"] = now.Add(-time.Hour).Unix()
			c["iat"] = now.Add(-2 * time.Hour).Unix()
		}), "invalid_grant", 400},
		{"wrong typ", idp.sign(t, "JWT", map[string]any{"iss": idp.URL, "sub": "00u-alice", "aud": s.Issuer, "resource": s.MCPURL,
			"client_id": entClientID, "jti": randHex(12), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}), "invalid_grant", 400},
		{"untrusted issuer", jag(func(c map[string]any) { c["iss"] = wl.URL }), "invalid_grant", 400},
	} {
		if st, m := exchange(tc.jag, nil); st != tc.status || m["error"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, st, m, tc.status, tc.code)
		}
	}

	// The IdP goes down: the keys in memory keep verifying (the guard's
	// key source keeps the last good set; TestIDJAGKeysThroughOutage
	// covers keys past their refresh time).
	idp.setDown(true)
	time.Sleep(1500 * time.Millisecond)
	if st, m := exchange(jag(nil), nil); st != 200 {
		t.Fatalf("exchange while the IdP is down: %d %v", st, m)
	}
	// Caddy restarts during the outage: the key set persisted in Caddy's
	// storage verifies.
	cf, err := os.ReadFile(s.caddy.caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	s.caddy.stop()
	s.caddy = startCaddy(t, s.dir, strings.ReplaceAll(string(cf), s.caddy.admin, "{ADMIN}"))
	waitHTTP(t, s.Client, s.Issuer+"/.well-known/oauth-authorization-server")
	if st, m := exchange(jag(nil), nil); st != 200 {
		t.Fatalf("exchange after a restart while the IdP is down: %d %v\n%s", st, m, tail(s.caddy.logs.String(), 4000))
	}
	if !strings.Contains(s.caddy.logs.String(), "persisted key set") {
		t.Fatalf("the restarted server did not use the persisted key set:\n%s", tail(s.caddy.logs.String(), 4000))
	}
}

// TestGoSDKClientCredentials: the Go SDK's client-credentials handler gets a
// token for a machine client with a secret (discovery from the 401, no
// resource sent: the only guarded resource) and calls a guarded tool; sub
// is the client id. A workload token (a Kubernetes-style service-account
// token from an OIDC-discoverable issuer) authenticates the workload's
// client, also ending in a guarded call.
func TestGoSDKClientCredentials(t *testing.T) {
	wl := startEnterpriseIdP(t, "unused")
	s, _ := enterpriseStack(t, wl)

	h, err := extauth.NewClientCredentialsHandler(&extauth.ClientCredentialsHandlerConfig{
		Credentials: &oauthex.ClientCredentials{ClientID: agentClientID, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: agentSecret}},
		HTTPClient:  s.Client,
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-agent", Version: "1.0.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.MCPURL, HTTPClient: s.Client, OAuthHandler: h}, nil)
	if err != nil {
		t.Fatalf("Go SDK connect with client credentials: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if who := toolJSON(t, res); !strings.Contains(who, `"subject":"`+agentClientID+`"`) && !strings.Contains(who, agentClientID) {
		t.Fatalf("upstream saw %s", who)
	}

	// Workload identity: the workload's platform token is the client assertion.
	now := time.Now()
	sa := wl.sign(t, "JWT", map[string]any{"iss": wl.URL, "sub": wlSubject, "aud": []string{s.Issuer}, "iat": now.Unix(),
		"nbf": now.Unix(), "exp": now.Add(30 * time.Minute).Unix(), "kubernetes.io": map[string]any{"namespace": "agents"}})
	post := func(assertion string) (int, map[string]any) {
		resp, err := s.Client.PostForm(s.Issuer+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {s.MCPURL},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	st, tok := post(sa)
	if st != 200 || tok["refresh_token"] != nil {
		t.Fatalf("workload token: %d %v", st, tok)
	}
	if who := whoamiWith(t, s, tok["access_token"].(string)); !strings.Contains(who, wlClientID) {
		t.Fatalf("upstream saw %s", who)
	}
	// Another service account, or a token signed by another key, is refused.
	other := wl.sign(t, "JWT", map[string]any{"iss": wl.URL, "sub": "system:serviceaccount:agents:other", "aud": s.Issuer,
		"iat": now.Unix(), "exp": now.Add(30 * time.Minute).Unix()})
	if st, m := post(other); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("unmapped workload: %d %v", st, m)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, wl.kid)
	payload, _ := json.Marshal(map[string]any{"iss": wl.URL, "sub": wlSubject, "aud": s.Issuer, "exp": now.Add(time.Minute).Unix()})
	forged, _ := jws.Sign(payload, jws.WithKey(jwa.ES256, ek, jws.WithProtectedHeaders(hdr)))
	if st, m := post(string(forged)); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("forged workload token: %d %v", st, m)
	}
}

// TestTSSDKClientCredentials: the TypeScript SDK's ClientCredentialsProvider
// (client secret) and PrivateKeyJwtProvider (RS256 key in a jwks_file) get
// tokens with the client_credentials grant from the built binary and call a
// guarded tool; no refresh token is issued and the subject is the client.
func TestTSSDKClientCredentials(t *testing.T) {
	binaries(t)
	if _, err := os.Stat(filepath.Join(repoRoot, "e2e", "node", "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatal("e2e/node/node_modules is missing: run scripts/test-deps.sh (npm ci)")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.FromRaw(&key.PublicKey)
	_ = pub.Set(jwk.KeyIDKey, "agent-ts")
	_ = pub.Set(jwk.AlgorithmKey, "RS256")
	pubJSON, _ := json.Marshal(pub)
	jwksFile := filepath.Join(t.TempDir(), "agent-jwks.json")
	if err := os.WriteFile(jwksFile, []byte(`{"keys":[`+string(pubJSON)+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOpts{extraApp: fmt.Sprintf(`client %s {
			secret %s
			grant_types client_credentials
			scopes todo:read
		}
		client keyed-agent {
			jwks_file %s
			grant_types client_credentials
			scopes todo:read
		}`, agentClientID, agentSecret, jwksFile)})
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ mode, client string }{{"secret", agentClientID}, {"pkjwt", "keyed-agent"}} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := exec.Command("node", filepath.Join(repoRoot, "e2e", "node", "agent-client.mjs"))
			cmd.Dir = filepath.Join(repoRoot, "e2e", "node")
			cmd.Env = append(os.Environ(), "MCP_URL="+s.MCPURL, "CLIENT_ID="+tc.client, "MODE="+tc.mode, "CLIENT_SECRET="+agentSecret,
				"SCOPE=todo:read", "NODE_EXTRA_CA_CERTS="+s.RootPEM,
				"PRIVATE_KEY_PKCS8="+string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("agent-client.mjs: %v\n%s", err, tail(stderr.String(), 4000))
			}
			var r map[string]any
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("agent-client.mjs output %q: %v", out, err)
			}
			if who, _ := r["whoami"].(string); !strings.Contains(who, tc.client) || r["has_refresh_token"] != false {
				t.Fatalf("result: %v", r)
			}
		})
	}
}
