package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// TestGoSDKWithDCR: a client that registers itself through DCR completes the
// full flow through the consent page with the official Go SDK.
func TestGoSDKWithDCR(t *testing.T) {
	s := startStack(t, stackOpts{extraApp: "dcr"})
	cs, pages := goSDKSession(t, s, func(c *auth.AuthorizationCodeHandlerConfig) {
		c.DynamicClientRegistrationConfig = &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName:   "e2e DCR client",
				RedirectURIs: []string{cliRedirect},
				GrantTypes:   []string{"authorization_code", "refresh_token"},
			},
		}
	}, nil)
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if !slices.ContainsFunc(*pages, func(p string) bool { return p == "/authorize" }) {
		t.Fatalf("a DCR client got no consent page; pages seen: %v", *pages)
	}

	// A client the server does not know gets the JSON answer that lets
	// mcp-remote re-register.
	req, _ := http.NewRequest("GET", s.Issuer+"/authorize?response_type=code&client_id=dcr_gone&redirect_uri="+url.QueryEscape(cliRedirect)+"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(fmt.Sprint(body["error_description"]), "is not registered") || body["registration_endpoint"] != s.Issuer+"/register" {
		t.Fatalf("unknown client at /authorize: %d %v", resp.StatusCode, body)
	}
}

// TestDCRRefusals checks the narrowed RFC 7591 endpoint through the binary.
func TestDCRRefusals(t *testing.T) {
	s := startStack(t, stackOpts{extraApp: "dcr"})
	post := func(body string) (int, map[string]any) {
		resp, err := s.Client.Post(s.Issuer+"/register", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"confidential client", `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`, 400, "invalid_client_metadata"},
		{"http non-loopback redirect", `{"redirect_uris":["http://app.example/cb"]}`, 400, "invalid_redirect_uri"},
		{"javascript redirect", `{"redirect_uris":["javascript:alert(1)"]}`, 400, "invalid_redirect_uri"},
		{"fragment", `{"redirect_uris":["https://app.example/cb#x"]}`, 400, "invalid_redirect_uri"},
		{"implicit grant", `{"redirect_uris":["https://app.example/cb"],"grant_types":["implicit"]}`, 400, "invalid_client_metadata"},
		{"no redirect", `{"client_name":"x"}`, 400, "invalid_redirect_uri"},
		{"not json", `redirect_uris=x`, 400, "invalid_client_metadata"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, m := post(c.body)
			if st != c.status || m["error"] != c.code {
				t.Fatalf("got %d %v, want %d %s", st, m, c.status, c.code)
			}
		})
	}
	t.Run("Cursor's three mixed redirect URIs in one registration", func(t *testing.T) {
		st, m := post(`{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","https://www.cursor.com/agents/mcp/oauth/callback","http://localhost:8787/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
		if st != 201 {
			t.Fatalf("got %d %v, want 201", st, m)
		}
		id, _ := m["client_id"].(string)
		if id == "" || strings.HasPrefix(id, "https://") || m["client_secret"] != nil {
			t.Fatalf("registration response: %v", m)
		}
	})
}

// cimdServer serves client metadata documents over TLS on localhost with a
// certificate from a test CA; the CA is written to a PEM file for the
// server's ca_bundle option.
type cimdServer struct {
	URL     string
	CAFile  string
	fetches atomic.Int64
	others  atomic.Int64 // requests for any other path (junk)
	doc     atomic.Value // string
	// jwks, when set, is served at JWKSURL (a private_key_jwt client's keys).
	jwks        atomic.Value // string
	JWKSURL     string
	jwksFetches atomic.Int64
}

func startCIMDServer(t *testing.T) *cimdServer {
	t.Helper()
	cs := &cimdServer{}
	var base string
	base, cs.CAFile = startTLSDocs(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if set, ok := cs.jwks.Load().(string); ok && r.URL.Path == "/oauth/jwks.json" {
			cs.jwksFetches.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "max-age=600")
			io.WriteString(w, set)
			return
		}
		if r.URL.Path != "/oauth/client-metadata.json" {
			cs.others.Add(1)
			http.NotFound(w, r)
			return
		}
		cs.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, cs.doc.Load().(string))
	}))
	cs.URL = base + "/oauth/client-metadata.json"
	cs.JWKSURL = base + "/oauth/jwks.json"
	cs.doc.Store(fmt.Sprintf(`{"client_id":%q,"client_name":"e2e CIMD client","redirect_uris":[%q],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}`, cs.URL, "http://127.0.0.1/callback"))
	return cs
}

// TestGoSDKWithCIMD: a client identified only by its metadata document URL
// completes the flow through the consent page (the document is fetched over
// TLS from loopback, which the development exception allows).
func TestGoSDKWithCIMD(t *testing.T) {
	doc := startCIMDServer(t)
	s := startStack(t, stackOpts{extraApp: fmt.Sprintf("cimd {\n\t\t\tpolicy any\n\t\t\tinsecure_allow_loopback\n\t\t\tca_bundle %s\n\t\t}", doc.CAFile)})

	resp, err := s.Client.Get(s.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if md["client_id_metadata_document_supported"] != true || !strings.Contains(fmt.Sprint(md["token_endpoint_auth_methods_supported"]), "none") {
		t.Fatalf("metadata does not advertise CIMD as Claude requires: %v", md)
	}

	cs, pages := goSDKSession(t, s, func(c *auth.AuthorizationCodeHandlerConfig) {
		c.ClientIDMetadataDocumentConfig = &auth.ClientIDMetadataDocumentConfig{URL: doc.URL}
	}, nil)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if who := toolJSON(t, res); !strings.Contains(who, doc.URL) {
		t.Fatalf("upstream did not see the CIMD client id: %s", who)
	}
	if !slices.Contains(*pages, "/authorize") {
		t.Fatalf("a CIMD client got no consent page; pages: %v", *pages)
	}
	if doc.fetches.Load() == 0 {
		t.Fatal("the metadata document was never fetched")
	}
}

// TestConsentDeny: denying consent redirects access_denied with state and iss.
func TestConsentDeny(t *testing.T) {
	s := startStack(t, stackOpts{extraApp: "dcr"})
	st, _, reg := postFormJSON(t, s, `{"client_name":"Deny me","redirect_uris":["http://127.0.0.1/callback"]}`)
	if st != 201 {
		t.Fatalf("register: %d %v", st, reg)
	}
	conf := s.oauthConfig("todo:read")
	conf.ClientID = reg["client_id"].(string)
	u := conf.AuthCodeURL("deny-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	b.decision = "deny"
	res := b.authorize(t, u, aliceEmail, alicePassword)
	if res.Query.Get("error") != "access_denied" || res.Query.Get("state") != "deny-state" || res.Query.Get("iss") != s.Issuer || res.Query.Get("code") != "" {
		t.Fatalf("deny: %v", res.Query)
	}
}

func postFormJSON(t *testing.T, s *stack, body string) (int, string, map[string]any) {
	t.Helper()
	resp, err := s.Client.Post(s.Issuer+"/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	code, _ := m["error"].(string)
	return resp.StatusCode, code, m
}

// startTLSDocs serves h over TLS on a loopback port as "localhost", with a
// certificate from a fresh test CA; it returns the base URL and the CA's PEM
// file (for a server's ca_bundle or a client's --ca-file).
func startTLSDocs(t *testing.T, h http.Handler) (base, caFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e CIMD CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("https://localhost:%d", l.Addr().(*net.TCPAddr).Port), caFile
}
