package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/oauth2"
)

// TestChatGPTPrivateKeyJWTThroughCIMD: a ChatGPT-shaped CIMD client (its
// published field set: token_endpoint_auth_method private_key_jwt, the
// ["none","private_key_jwt"] list, token_endpoint_auth_signing_alg RS256,
// a jwks_uri) connects through the built binary: login, consent, code, token
// with a client assertion, refresh with a client assertion, and a guarded
// call. Without an assertion, /token answers 401 invalid_client.
// chatgptCIMD is a stack with a ChatGPT-shaped CIMD client served over
// HTTPS (test CA) with its JWK set.
type chatgptCIMD struct {
	s        *stack
	cs       *cimdServer
	key      *rsa.PrivateKey
	redirect string
}

func startChatGPTCIMD(t *testing.T) *chatgptCIMD {
	t.Helper()
	cs := startCIMDServer(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.FromRaw(&key.PublicKey)
	_ = pub.Set(jwk.KeyIDKey, "chatgpt-e2e")
	_ = pub.Set(jwk.AlgorithmKey, "RS256")
	_ = pub.Set(jwk.KeyUsageKey, "sig")
	pubJSON, _ := json.Marshal(pub)
	cs.jwks.Store(`{"keys":[` + string(pubJSON) + `]}`)
	const redirect = "http://127.0.0.1/callback"
	cs.doc.Store(fmt.Sprintf(`{
  "client_id": %q,
  "client_uri": "https://chatgpt.com/",
  "redirect_uris": [%q],
  "token_endpoint_auth_method": "private_key_jwt",
  "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "client_name": "ChatGPT",
  "logo_uri": "https://persistent.oaistatic.com/sonic/misc/openai-logo.png",
  "token_endpoint_auth_signing_alg": "RS256",
  "jwks_uri": %q
}`, cs.URL, redirect, cs.JWKSURL))
	s := startStack(t, stackOpts{extraApp: fmt.Sprintf("cimd {\n\t\t\tpolicy any\n\t\t\tinsecure_allow_loopback\n\t\t\tca_bundle %s\n\t\t}", cs.CAFile)})
	return &chatgptCIMD{s: s, cs: cs, key: key, redirect: redirect}
}

// login signs alice in through login and consent and returns the code and
// its PKCE verifier.
func (c *chatgptCIMD) login(t *testing.T) (code, verifier string) {
	t.Helper()
	conf := c.s.oauthConfig("todo:read")
	conf.ClientID, conf.RedirectURL = c.cs.URL, c.redirect
	verifier = oauth2.GenerateVerifier()
	u := conf.AuthCodeURL("chatgpt-state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", c.s.MCPURL))
	res := newBrowser(t, c.s.Client, c.redirect).authorize(t, u, aliceEmail, alicePassword)
	code = res.Query.Get("code")
	if code == "" || res.Query.Get("iss") != c.s.Issuer {
		t.Fatalf("authorization response: %v (pages %v)", res.Query, res.Pages)
	}
	if !strings.Contains(strings.Join(res.Pages, " "), "/authorize") {
		t.Fatalf("no consent page for a CIMD client: %v", res.Pages)
	}
	return code, verifier
}

func TestChatGPTPrivateKeyJWTThroughCIMD(t *testing.T) {
	c := startChatGPTCIMD(t)
	s, cs, key, redirect := c.s, c.cs, c.key, c.redirect

	// Discovery advertises what ChatGPT needs.
	resp, err := s.Client.Get(s.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if !strings.Contains(fmt.Sprint(md["token_endpoint_auth_methods_supported"]), "private_key_jwt") ||
		!strings.Contains(fmt.Sprint(md["token_endpoint_auth_signing_alg_values_supported"]), "RS256") ||
		md["client_id_metadata_document_supported"] != true {
		t.Fatalf("metadata: %v", md)
	}

	assertion := func(jti string) string {
		now := time.Now()
		claims, _ := json.Marshal(map[string]any{"iss": cs.URL, "sub": cs.URL, "aud": s.Issuer + "/token", "jti": jti,
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
		h := jws.NewHeaders()
		_ = h.Set(jws.KeyIDKey, "chatgpt-e2e")
		_ = h.Set(jws.TypeKey, "JWT")
		out, err := jws.Sign(claims, jws.WithKey(jwa.RS256, key, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	post := func(form url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := s.Client.PostForm(s.Issuer+"/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}

	// Login and consent in the hosted pages.
	code, verifier := c.login(t)

	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
		"code_verifier": {verifier}, "client_id": {cs.URL}, "resource": {s.MCPURL}}
	if st, m := post(exchange); st != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Fatalf("exchange without an assertion: %d %v, want 401 invalid_client", st, m)
	}
	exchange.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	exchange.Set("client_assertion", assertion("code-1"))
	st, tok := post(exchange)
	if st != http.StatusOK || tok["access_token"] == nil || tok["refresh_token"] == nil {
		t.Fatalf("exchange with an assertion: %d %v", st, tok)
	}
	// The same assertion again is a replay.
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {exchange.Get("client_assertion")}}
	if st, m := post(refresh); st != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Fatalf("replayed assertion: %d %v", st, m)
	}
	refresh.Set("client_assertion", assertion("refresh-1"))
	st, tok2 := post(refresh)
	if st != http.StatusOK || tok2["access_token"] == nil || tok2["refresh_token"] == tok["refresh_token"] {
		t.Fatalf("refresh with an assertion: %d %v", st, tok2)
	}

	// The guarded call with the refreshed token.
	if who := whoamiWith(t, s, tok2["access_token"].(string)); !strings.Contains(who, cs.URL) {
		t.Fatalf("upstream did not see the CIMD client: %s", who)
	}
	if n := cs.jwksFetches.Load(); n != 1 {
		t.Fatalf("the JWK set was fetched %d times, want once (cached)", n)
	}
}

// TestTSSDKPrivateKeyJWT: the TypeScript SDK's private_key_jwt client
// authentication (createPrivateKeyJwtAuth, which PrivateKeyJwtProvider
// uses; the provider itself runs client_credentials, which this server does
// not serve) redeems a code and refreshes as the ChatGPT-shaped CIMD client;
// the refreshed token passes the guard.
func TestTSSDKPrivateKeyJWT(t *testing.T) {
	if _, err := os.Stat(filepath.Join(repoRoot, "e2e", "node", "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatal("e2e/node/node_modules is missing: run scripts/test-deps.sh (npm ci)")
	}
	c := startChatGPTCIMD(t)
	code, verifier := c.login(t)
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(repoRoot, "e2e", "node", "pkjwt-client.mjs"))
	cmd.Dir = filepath.Join(repoRoot, "e2e", "node")
	cmd.Env = append(os.Environ(), "ISSUER="+c.s.Issuer, "CLIENT_ID="+c.cs.URL, "CODE="+code, "CODE_VERIFIER="+verifier,
		"REDIRECT_URI="+c.redirect, "RESOURCE="+c.s.MCPURL, "NODE_EXTRA_CA_CERTS="+c.s.RootPEM,
		"PRIVATE_KEY_PKCS8="+string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pkjwt-client.mjs: %v\n%s", err, tail(stderr.String(), 4000))
	}
	var r map[string]any
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("pkjwt-client.mjs output %q: %v", out, err)
	}
	at, _ := r["refreshed_access_token"].(string)
	if at == "" || r["refresh_token"] == r["refreshed_refresh_token"] {
		t.Fatalf("tokens: %v", r)
	}
	if who := whoamiWith(t, c.s, at); !strings.Contains(who, c.cs.URL) {
		t.Fatalf("upstream did not see the CIMD client: %s", who)
	}
}
