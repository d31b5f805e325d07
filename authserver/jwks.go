package authserver

import (
	"crypto/sha256"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// JWKSHandler serves the key set's public keys as a JWK Set (RFC 7517 §5)
// for GET and HEAD. Responses may be cached for KeySet.JWKSMaxAge (five
// minutes by default, always shorter than the pre-publication window of new
// keys) and carry an ETag, so a client polling for new keys after a rotation gets 304s in
// between. Other methods get 405. CORS is added by the router (cors.go).
func JWKSHandler(k *KeySet) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, oauthErrorBody{Error: oauth.CodeInvalidRequest, ErrorDescription: "method not allowed"})
			return
		}
		body := k.JWKSJSON()
		sum := sha256.Sum256(body)
		etag := `"` + b64RawURL(sum[:16]) + `"`
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(k.JWKSMaxAge()/time.Second)))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", etag)
		if etagMatches(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// etagMatches implements the weak comparison of If-None-Match (RFC 9110 §13.1.2).
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}
