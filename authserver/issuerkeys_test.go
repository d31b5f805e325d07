package authserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDiscoverJWKSURI: the OpenID configuration first, then the RFC 8414
// path-inserted metadata; a document naming another issuer, or a jwks_uri
// that is not https (off loopback), is not used.
func TestDiscoverJWKSURI(t *testing.T) {
	const iss = "https://idp.test/tenant"
	f := &fakeJWKSFetcher{sets: map[string][]byte{}, errs: map[string]error{}, count: map[string]int{}}
	ctx := context.Background()
	if _, err := discoverJWKSURI(ctx, f, iss); err == nil {
		t.Fatal("discovered without documents")
	}
	f.set("https://idp.test/.well-known/oauth-authorization-server/tenant", discoveryDoc(t, iss, "https://idp.test/keys"))
	if u, err := discoverJWKSURI(ctx, f, iss); err != nil || u != "https://idp.test/keys" {
		t.Fatalf("RFC 8414 fallback: %q %v", u, err)
	}
	f.set(iss+"/.well-known/openid-configuration", discoveryDoc(t, "https://evil.test", "https://evil.test/keys"))
	if u, err := discoverJWKSURI(ctx, f, iss); err != nil || u != "https://idp.test/keys" {
		t.Fatalf("a document of another issuer was used: %q %v", u, err)
	}
	f.set(iss+"/.well-known/openid-configuration", discoveryDoc(t, iss, "http://idp.test/keys"))
	f.set("https://idp.test/.well-known/oauth-authorization-server/tenant", discoveryDoc(t, iss, "http://idp.test/keys"))
	if _, err := discoverJWKSURI(ctx, f, iss); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("http jwks_uri accepted: %v", err)
	}
}

// TestIssuerFetcher: https or loopback http only, no redirects, a size cap,
// 5xx temporary and 4xx not, max-age read.
func TestIssuerFetcher(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Cache-Control", "public, max-age=600")
			w.Write([]byte(`{"keys":[]}`))
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/big":
			w.Write([]byte(strings.Repeat("x", maxIssuerDocBytes+1)))
		case "/down":
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer ts.Close()
	f := IssuerFetcher{}
	ctx := context.Background()
	body, ttl, err := f.FetchJWKS(ctx, ts.URL+"/ok", "")
	if err != nil || string(body) != `{"keys":[]}` || ttl.Seconds() != 600 {
		t.Fatalf("ok: %q %v %v", body, ttl, err)
	}
	for path, temporary := range map[string]bool{"/redirect": false, "/big": false, "/down": true, "/missing": false} {
		_, _, err := f.FetchJWKS(ctx, ts.URL+path, "")
		te, ok := err.(temporaryError)
		if err == nil || !ok || te.Temporary() != temporary {
			t.Errorf("%s: %v (temporary %v, want %v)", path, err, ok && te.Temporary(), temporary)
		}
	}
	if _, _, err := f.FetchJWKS(ctx, "http://idp.example.com/keys", ""); err == nil {
		t.Error("http off loopback fetched")
	}
	for _, bad := range []string{"http://idp.example.com", "https://idp.example.com?x=1", "ftp://idp.example.com", "https://"} {
		if ValidateIssuerURL(bad) == nil {
			t.Errorf("issuer %q accepted", bad)
		}
	}
}
