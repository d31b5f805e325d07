package authserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestJWKSHandler(t *testing.T) {
	clock := newKeysTestClock()
	ks := newTestKeySet(t, openKeysTestStore(t), AlgEdDSA, clock)
	h := JWKSHandler(ks)

	get := func(method, inm string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/jwks.json", nil)
		if inm != "" {
			r.Header.Set("If-None-Match", inm)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := get(http.MethodGet, "")
	if w.Code != 200 || w.Body.String() != string(ks.JWKSJSON()) {
		t.Fatalf("GET: %d %q", w.Code, w.Body.String())
	}
	if w.Header().Get("Cache-Control") != "public, max-age=300" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", w.Header())
	}
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	tests := []struct {
		name   string
		method string
		inm    string
		status int
		body   bool
	}{
		{"head", http.MethodHead, "", 200, false},
		{"if-none-match", http.MethodGet, etag, 304, false},
		{"if-none-match weak", http.MethodGet, "W/" + etag, 304, false},
		{"if-none-match list", http.MethodGet, `"x", ` + etag, 304, false},
		{"if-none-match other", http.MethodGet, `"other"`, 200, true},
		{"post", http.MethodPost, "", 405, true},
		{"delete", http.MethodDelete, "", 405, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(tt.method, tt.inm)
			if w.Code != tt.status || (w.Body.Len() > 0) != tt.body {
				t.Fatalf("status %d body %q", w.Code, w.Body.String())
			}
			if tt.status == 405 && w.Header().Get("Allow") != "GET, HEAD" {
				t.Fatalf("Allow %q", w.Header().Get("Allow"))
			}
		})
	}
	t.Run("etag changes on rotation", func(t *testing.T) {
		clock.Add(time.Minute)
		if err := ks.Rotate(context.Background()); err != nil {
			t.Fatal(err)
		}
		w := get(http.MethodGet, etag)
		if w.Code != 200 || w.Header().Get("ETag") == etag {
			t.Fatalf("status %d etag %q", w.Code, w.Header().Get("ETag"))
		}
	})
}
