package caddymodule

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
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// readmeBlock returns the ```caddyfile block of README.md that follows the
// marker <!-- caddyfile-test: <name> -->.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- caddyfile-test: " + regexp.QuoteMeta(name) + " -->\\s*```caddyfile\\n(.*?)```")
	m := re.FindSubmatch(raw)
	if m == nil {
		t.Fatalf("README.md has no caddyfile block marked %q", name)
	}
	return string(m[1])
}

// selfSignedTLS is a TLS certificate for host, its own root.
func selfSignedTLS(t *testing.T, host string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// The README's production Caddyfile, copied to a real domain (here: adapted
// to loopback), onboards real clients: Claude Code's metadata document on
// claude.ai (a built-in trusted host, served by a local listener that the
// test resolver maps claude.ai to) reaches the login, and Cursor's
// registration shape gets a client. Before: no client lane was on (an empty
// 200 at /register, invalid_client for Claude's client id).
func TestReadmeProductionCaddyfileOnboardsClients(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("MCPAUTH_ADMIN_PASSWORD", "a-long-random-admin-password")

	// Claude Code's document, on "claude.ai" with a certificate the test trusts.
	cert, certPEM := selfSignedTLS(t, "claude.ai")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var docHits atomic.Int64
	var clientID string
	docSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth/claude-code-client-metadata" {
			http.NotFound(w, r)
			return
		}
		docHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id": clientID, "client_name": "Claude Code",
			"redirect_uris":              []string{"http://localhost/callback"},
			"grant_types":                []string{"authorization_code", "refresh_token"},
			"response_types":             []string{"code"},
			"token_endpoint_auth_method": "none",
		})
	}))
	docSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	docSrv.StartTLS()
	t.Cleanup(docSrv.Close)
	_, docPort, _ := net.SplitHostPort(docSrv.Listener.Addr().String())
	clientID = "https://claude.ai:" + docPort + "/oauth/claude-code-client-metadata"
	testCIMDLookupIP = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "claude.ai" {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return nil, errors.New("test resolver: unknown host " + host)
	}
	t.Cleanup(func() { testCIMDLookupIP = nil })

	// The README's block, with the domain on loopback and the CIMD fetcher
	// allowed to reach the local listener (the development hooks).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	origin := fmt.Sprintf("http://localhost:%d", port)
	src := readmeBlock(t, "production")
	src = strings.ReplaceAll(src, "https://mcp.example.com", origin)
	src = strings.ReplaceAll(src, "mcp.example.com", origin)
	src = strings.Replace(src, "{\n", "{\n\tadmin off\n\tpersist_config off\n\tstorage file_system "+filepath.Join(dir, "caddy")+"\n", 1)
	if !strings.Contains(src, "policy trusted\n") || strings.Contains(src, "trusted_hosts") {
		t.Fatalf("the production Caddyfile does not rely on the built-in trusted hosts:\n%s", src)
	}
	src = strings.Replace(src, "policy trusted\n", "policy trusted\n\t\t\tinsecure_allow_loopback\n\t\t\tca_bundle "+caFile+"\n", 1)
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	cfgJSON, _, err := adapter.Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt:\n%s\n%v", src, err)
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// Discovery says both lanes are on.
	resp, body := get(origin + "/.well-known/oauth-authorization-server")
	var meta map[string]any
	if err := json.Unmarshal([]byte(body), &meta); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metadata: %d %s", resp.StatusCode, body)
	}
	if meta["client_id_metadata_document_supported"] != true || meta["registration_endpoint"] != origin+"/register" {
		t.Fatalf("metadata does not turn on CIMD and DCR: %s", body)
	}

	// Claude Code (CIMD, a built-in host): the authorization request is
	// accepted and goes to the hosted login.
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"http://localhost:53682/callback"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
		"state": {"s1"}, "resource": {origin + "/mcp"}, "scope": {"todo:read"},
	}
	resp, body = get(origin + "/authorize?" + q.Encode())
	loc := resp.Header.Get("Location")
	toLogin := (resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther) && strings.Contains(loc, "/login")
	loginPage := resp.StatusCode == 200 && strings.Contains(body, `name="password"`)
	if !toLogin && !loginPage {
		t.Fatalf("Claude Code's client id on claude.ai is not accepted: %d %s %s", resp.StatusCode, loc, body)
	}
	if docHits.Load() == 0 {
		t.Fatal("the metadata document was never fetched")
	}

	// Cursor (DCR): its one registration of three redirect URIs of mixed kinds.
	reg := `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","https://www.cursor.com/agents/mcp/oauth/callback","http://localhost:8787/callback"],` +
		`"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`
	rresp, err := client.Post(origin+"/register", "application/json", strings.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(rresp.Body)
	rresp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	if rresp.StatusCode != http.StatusCreated || json.Unmarshal(rb, &out) != nil || !strings.HasPrefix(out.ClientID, "dcr_") {
		t.Fatalf("Cursor's registration: %d %s", rresp.StatusCode, rb)
	}
}
