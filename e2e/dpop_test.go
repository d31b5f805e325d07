package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
)

// dpopClient is an RFC 9449 client written here on jwx alone (not on the
// product's verifier): every request through its transport carries a fresh
// proof; token endpoint answers of use_dpop_nonce are retried once with the
// server's nonce; requests elsewhere present the access token with the DPoP
// scheme and ath.
type dpopClient struct {
	t        testing.TB
	key      *ecdsa.PrivateKey
	pub      jwk.Key
	jkt      string
	base     http.RoundTripper
	tokenURL string

	mu    sync.Mutex
	token string
	nonce string
	last  string // the last proof sent
}

func newDPoPE2EClient(t testing.TB, base http.RoundTripper, tokenURL string) *dpopClient {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.FromRaw(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopClient{t: t, key: key, pub: pub, jkt: base64.RawURLEncoding.EncodeToString(tp), base: base, tokenURL: tokenURL}
}

// proof signs a proof for method and target (query dropped), with ath for
// token when set.
func (c *dpopClient) proof(method, target, token string) string {
	c.t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		c.t.Fatal(err)
	}
	u.RawQuery, u.Fragment = "", ""
	jti := make([]byte, 16)
	rand.Read(jti)
	claims := map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti), "htm": method, "htu": u.String(), "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	c.mu.Lock()
	if c.nonce != "" && target == c.tokenURL {
		claims["nonce"] = c.nonce
	}
	c.mu.Unlock()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set("typ", "dpop+jwt")
	_ = hdr.Set("jwk", c.pub)
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, c.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		c.t.Fatal(err)
	}
	return string(out)
}

func (c *dpopClient) setToken(tok string) { c.mu.Lock(); c.token = tok; c.mu.Unlock() }

func (c *dpopClient) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	toToken := req.URL.String() == c.tokenURL
	send := func() (*http.Response, error) {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		c.mu.Lock()
		tok := c.token
		c.mu.Unlock()
		var p string
		if toToken {
			p = c.proof(r.Method, r.URL.String(), "")
		} else {
			p = c.proof(r.Method, r.URL.String(), tok)
			r.Header.Set("Authorization", "DPoP "+tok)
		}
		r.Header.Set("DPoP", p)
		c.mu.Lock()
		c.last = p
		c.mu.Unlock()
		return c.base.RoundTrip(r)
	}
	resp, err := send()
	if err != nil || !toToken {
		return resp, err
	}
	if n := resp.Header.Get("DPoP-Nonce"); n != "" {
		c.mu.Lock()
		stale := c.nonce != n
		c.nonce = n
		c.mu.Unlock()
		if resp.StatusCode == 400 && stale {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "use_dpop_nonce") {
				return send()
			}
			resp.Body = io.NopCloser(bytes.NewReader(b))
		}
	}
	return resp, nil
}

// mcpCall posts an initialize to the MCP endpoint with the given headers.
func mcpCall(t testing.TB, c *http.Client, target string, hdr map[string]string) (int, string) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
	req, _ := http.NewRequest("POST", target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, strings.Join(resp.Header.Values("WWW-Authenticate"), " | ")
}

func getJSON(t testing.TB, c *http.Client, u string) map[string]any {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
	return m
}

// TestDPoPEndToEnd (requirement 25) through the built binary: a jwx client
// with real proofs gets DPoP-bound tokens (through a server nonce) and
// calls the guarded MCP server with the Go SDK; the same token as Bearer,
// a replayed proof and a proof for another URL or method are refused; a
// bound refresh token needs a proof of the same key.
func TestDPoPEndToEnd(t *testing.T) {
	s := startStack(t, stackOpts{extraApp: "dpop {\n\t\t\tnonce\n\t\t}", extraGuard: "require_dpop"})
	if algs, ok := getJSON(t, s.Client, s.Issuer+"/.well-known/oauth-authorization-server")["dpop_signing_alg_values_supported"].([]any); !ok || len(algs) == 0 {
		t.Fatal("AS metadata does not advertise DPoP")
	}
	prm := getJSON(t, s.Client, s.Issuer+"/.well-known/oauth-protected-resource/mcp")
	if prm["dpop_bound_access_tokens_required"] != true {
		t.Fatalf("PRM: %v", prm)
	}
	if st, ch := mcpCall(t, s.Client, s.MCPURL, nil); st != 401 || !strings.Contains(ch, "Bearer ") || !strings.Contains(ch, `DPoP `) || !strings.Contains(ch, `algs="`) {
		t.Fatalf("challenge: %d %q", st, ch)
	}

	dc := newDPoPE2EClient(t, s.Client.Transport, s.Issuer+"/token")
	dpopHTTP := &http.Client{Transport: dc, Timeout: 60 * time.Second}
	tok := s.loginWith(t, s.oauthConfig("todo:read", "offline_access"), context.WithValue(context.Background(), oauth2.HTTPClient, dpopHTTP))
	if !strings.EqualFold(tok.TokenType, "DPoP") {
		t.Fatalf("token_type %q", tok.TokenType)
	}
	cnf, _ := jwtClaims(t, tok.AccessToken)["cnf"].(map[string]any)
	if cnf["jkt"] != dc.jkt {
		t.Fatalf("cnf %v, want jkt %s", cnf, dc.jkt)
	}
	dc.setToken(tok.AccessToken)

	// A real MCP client session, every request with a fresh proof.
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-dpop", Version: "1.0.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.MCPURL, HTTPClient: dpopHTTP}, nil)
	if err != nil {
		t.Fatalf("MCP connect with DPoP: %v", err)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) == 0 {
		t.Fatalf("tools/list: %v", err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err != nil {
		t.Fatalf("whoami: %v", err)
	}
	cs.Close()

	// The stolen token without the key: refused as Bearer.
	if st, ch := mcpCall(t, s.Client, s.MCPURL, map[string]string{"Authorization": "Bearer " + tok.AccessToken}); st != 401 || !strings.Contains(ch, `error="invalid_token"`) {
		t.Fatalf("bound token as Bearer: %d %q", st, ch)
	}
	// A captured proof replayed: refused.
	p := dc.proof("POST", s.MCPURL, tok.AccessToken)
	hdr := map[string]string{"Authorization": "DPoP " + tok.AccessToken, "DPoP": p}
	if st, ch := mcpCall(t, s.Client, s.MCPURL, hdr); st != 200 {
		t.Fatalf("fresh proof: %d %q", st, ch)
	}
	if st, ch := mcpCall(t, s.Client, s.MCPURL, hdr); st != 401 || !strings.Contains(ch, `error="invalid_dpop_proof"`) {
		t.Fatalf("replayed proof: %d %q", st, ch)
	}
	// Proofs for another URL or method: refused.
	for name, pr := range map[string]string{
		"another URL":    dc.proof("POST", s.Issuer+"/other", tok.AccessToken),
		"another method": dc.proof("GET", s.MCPURL, tok.AccessToken),
	} {
		if st, ch := mcpCall(t, s.Client, s.MCPURL, map[string]string{"Authorization": "DPoP " + tok.AccessToken, "DPoP": pr}); st != 401 || !strings.Contains(ch, "invalid_dpop_proof") {
			t.Fatalf("%s: %d %q", name, st, ch)
		}
	}

	// The refresh token is bound: without a proof it is refused, with one
	// (of the same key) it rotates into a new bound pair.
	rf := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {cliClientID}}
	if st, code, _ := postForm(t, s.Client, s.Issuer+"/token", rf); st != 400 || code != "invalid_grant" {
		t.Fatalf("bound refresh without a proof: %d %s", st, code)
	}
	st, code, body := postForm(t, dpopHTTP, s.Issuer+"/token", rf)
	if st != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("bound refresh with a proof: %d %s %v", st, code, body)
	}
	auditShows(t, s, "token.issued")
}

// multiDPoPReplay (requirement 25, across instances on PostgreSQL): a
// DPoP-bound token from A; a proof accepted by A's guard is refused when
// replayed at B's guard (the jti is recorded in the shared store), while a
// fresh proof passes at B.
func multiDPoPReplay(t *testing.T, p *pair, b *browser) {
	dc := newDPoPE2EClient(t, p.Client.Transport, p.Issuer+"/token")
	dpopHTTP := &http.Client{Transport: dc, Timeout: 60 * time.Second}
	code, verifier := p.code(t, b)
	st, errCode, m := postForm(t, dpopHTTP, p.A.base+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {cliRedirect}, "code_verifier": {verifier}, "client_id": {cliClientID}, "resource": {p.MCPURL}})
	access, _ := m["access_token"].(string)
	if st != 200 || m["token_type"] != "DPoP" || access == "" {
		t.Fatalf("DPoP exchange at A: %d %s %v", st, errCode, m["token_type"])
	}
	proof := dc.proof("POST", p.MCPURL, access)
	hdr := map[string]string{"Authorization": "DPoP " + access, "DPoP": proof}
	if st, ch := mcpCall(t, p.Client, p.A.base+"/mcp", hdr); st != 200 {
		t.Fatalf("A's guard with a fresh proof: %d %q", st, ch)
	}
	if st, ch := mcpCall(t, p.Client, p.B.base+"/mcp", hdr); st != 401 || !strings.Contains(ch, "invalid_dpop_proof") {
		t.Fatalf("B's guard with A's proof replayed: %d %q, want 401 invalid_dpop_proof", st, ch)
	}
	fresh := map[string]string{"Authorization": "DPoP " + access, "DPoP": dc.proof("POST", p.MCPURL, access)}
	if st, ch := mcpCall(t, p.Client, p.B.base+"/mcp", fresh); st != 200 {
		t.Fatalf("B's guard with a fresh proof: %d %q", st, ch)
	}
	if st, _ := mcpCall(t, p.Client, p.B.base+"/mcp", map[string]string{"Authorization": "Bearer " + access}); st != 401 {
		t.Fatalf("bound token as Bearer at B: %d", st)
	}
}
