package cimd

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FetchJWKS applies the fetcher's rules to a jwks_uri: the 5 KiB cap
// (whatever MaxBytes allows documents), JWK set media types, no redirect,
// special-use addresses refused in production, a lifetime from the headers
// within [5m, 1h].
func TestFetchJWKS(t *testing.T) {
	set := []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","kid":"k1"}]}`)
	big := []byte(`{"keys":[],"pad":"` + strings.Repeat("x", MaxJWKSBytes) + `"}`)
	mux := http.NewServeMux()
	mux.Handle("/jwks.json", serveJSON(set, "Cache-Control", "max-age=600"))
	mux.HandleFunc("/jwk-set", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(set)
	})
	mux.Handle("/forever", serveJSON(set, "Cache-Control", "max-age=999999"))
	mux.Handle("/nostore", serveJSON(set, "Cache-Control", "no-store"))
	mux.Handle("/big", serveJSON(big))
	mux.HandleFunc("/chunked-big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(big[:100])
		w.(http.Flusher).Flush()
		w.Write(big[100:])
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write(set)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/jwks.json", http.StatusFound)
	})
	ts := newTestServer(t, mux)
	dns := newFakeDNS("example.com", "127.0.0.1")
	// Documents may be larger than a key set: the JWKS cap holds anyway.
	f := devFetcher(t, ts, dns, func(c *FetcherConfig) {
		c.MaxBytes = 64 << 10
		c.PerRequesterBurst = 100
		c.PerHostBurst = 100
		c.PerDomainBurst = 100
	})
	ctx := context.Background()

	for _, tc := range []struct {
		path string
		ttl  time.Duration
	}{{"/jwks.json", 10 * time.Minute}, {"/jwk-set", 5 * time.Minute}, {"/forever", time.Hour}, {"/nostore", 5 * time.Minute}} {
		body, ttl, err := f.FetchJWKS(ctx, ts.url(tc.path), "203.0.113.1")
		if err != nil || string(body) != string(set) || ttl != tc.ttl {
			t.Errorf("%s: %q ttl %v, %v (want ttl %v)", tc.path, body, ttl, err, tc.ttl)
		}
	}
	for _, tc := range []struct{ path, reason string }{
		{"/big", "larger than 5120 bytes"},
		{"/chunked-big", "larger than 5120 bytes"},
		{"/html", "content type"},
		{"/redirect", "redirect not followed"},
	} {
		_, _, err := f.FetchJWKS(ctx, ts.url(tc.path), "203.0.113.1")
		if !errors.Is(err, ErrFetch) || errors.Is(err, ErrTemporary) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: error %v, want a permanent fetch error saying %q", tc.path, err, tc.reason)
		}
	}
	if _, _, err := f.FetchJWKS(ctx, "http://example.com:"+ts.port+"/jwks.json", ""); !errors.Is(err, ErrInvalidClientID) {
		t.Errorf("http jwks_uri: %v", err)
	}
}

// In production mode a jwks_uri on a loopback or other special-use address
// is refused without a connection, by literal or after resolution.
func TestFetchJWKSProductionSSRF(t *testing.T) {
	ts := newTestServer(t, serveJSON([]byte(`{"keys":[]}`)))
	dns := newFakeDNS("loopback.test", "127.0.0.1", "metadata.test", "169.254.169.254", "private.test", "10.1.2.3")
	f, err := NewFetcher(FetcherConfig{ExtraCAs: ts.pool, LookupIP: dns.lookup})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	for _, u := range []string{"https://127.0.0.1:" + ts.port + "/jwks", "https://[::1]:" + ts.port + "/jwks"} {
		if _, _, err := f.FetchJWKS(context.Background(), u, ""); !errors.Is(err, ErrInvalidClientID) {
			t.Errorf("%s: %v, want ErrInvalidClientID", u, err)
		}
	}
	for _, host := range []string{"loopback.test", "metadata.test", "private.test"} {
		_, _, err := f.FetchJWKS(context.Background(), "https://"+host+":"+ts.port+"/jwks", "")
		if !errors.Is(err, ErrForbiddenAddress) || errors.Is(err, ErrTemporary) {
			t.Errorf("%s: %v, want ErrForbiddenAddress", host, err)
		}
	}
	ts.ln.assertNoConnection(t)
}
