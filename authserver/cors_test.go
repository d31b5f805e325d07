package authserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCORS(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusTeapot)
	})
	anyOrigin := CORS{}.Wrap(inner)
	listed := CORS{AllowedOrigins: []string{"https://inspector.example", "http://localhost:6274/"}}.Wrap(inner)

	tests := []struct {
		name        string
		h           http.Handler
		vary        bool
		method      string
		origin      string
		acrm        string
		cookie      bool
		status      int
		allowOrigin string
		preflight   bool
	}{
		{name: "any: simple request", h: anyOrigin, method: "POST", origin: "https://x.example", status: 418, allowOrigin: "*"},
		{name: "any: preflight", h: anyOrigin, method: "OPTIONS", origin: "https://x.example", acrm: "POST", status: 204, allowOrigin: "*", preflight: true},
		{name: "any: with cookie still no credentials", h: anyOrigin, method: "POST", origin: "https://x.example", cookie: true, status: 418, allowOrigin: "*"},
		{name: "any: no origin", h: anyOrigin, method: "GET", status: 418},
		{name: "any: options without acrm is not preflight", h: anyOrigin, method: "OPTIONS", origin: "https://x.example", status: 418, allowOrigin: "*"},
		{vary: true, name: "listed: allowed origin echoed", h: listed, method: "GET", origin: "https://inspector.example", status: 418, allowOrigin: "https://inspector.example"},
		{vary: true, name: "listed: trailing slash in config", h: listed, method: "GET", origin: "http://localhost:6274", status: 418, allowOrigin: "http://localhost:6274"},
		{vary: true, name: "listed: case-insensitive", h: listed, method: "GET", origin: "https://INSPECTOR.example", status: 418, allowOrigin: "https://INSPECTOR.example"},
		{vary: true, name: "listed: preflight allowed", h: listed, method: "OPTIONS", origin: "https://inspector.example", acrm: "POST", status: 204, allowOrigin: "https://inspector.example", preflight: true},
		{vary: true, name: "listed: other origin gets no CORS", h: listed, method: "POST", origin: "https://evil.example", status: 418},
		{vary: true, name: "listed: other origin preflight refused", h: listed, method: "OPTIONS", origin: "https://evil.example", acrm: "POST", status: 403},
		{vary: true, name: "listed: origin prefix is not allowed", h: listed, method: "GET", origin: "https://inspector.example.evil.example", status: 418},
		{vary: true, name: "listed: null origin", h: listed, method: "GET", origin: "null", status: 418},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/token", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.acrm != "" {
				r.Header.Set("Access-Control-Request-Method", tt.acrm)
				r.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version")
			}
			if tt.cookie {
				r.Header.Set("Cookie", "a=b")
			}
			w := httptest.NewRecorder()
			tt.h.ServeHTTP(w, r)
			h := w.Header()
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if got := h.Get("Access-Control-Allow-Origin"); got != tt.allowOrigin {
				t.Fatalf("Allow-Origin %q, want %q", got, tt.allowOrigin)
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatal("Allow-Credentials must never be sent")
			}
			if tt.preflight {
				if h.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" {
					t.Fatalf("Allow-Methods %q", h.Get("Access-Control-Allow-Methods"))
				}
				ah := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
				for _, want := range []string{"authorization", "content-type", "mcp-protocol-version", "dpop"} {
					if !strings.Contains(ah, want) {
						t.Fatalf("Allow-Headers %q lacks %s", ah, want)
					}
				}
			} else if tt.allowOrigin != "" && h.Get("Access-Control-Expose-Headers") != "WWW-Authenticate, DPoP-Nonce" {
				t.Fatalf("Expose-Headers %q", h.Get("Access-Control-Expose-Headers"))
			}
			if tt.vary && !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Fatal("echoing CORS must vary on Origin")
			}
		})
	}
}
