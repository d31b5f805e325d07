package idp

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
)

// newNonce returns a fresh CSP nonce (128 bits).
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b)
}

// securityHeaders sets the headers every page of the hosted login carries
// (requirement 13): a CSP that only admits our nonce'd style block and
// images, no framing, no referrer, no sniffing and no caching.
//
// formAction restricts where the page's forms may post. It is false for the
// pages whose form POST answers with a 303 chain that can end at the
// client's redirect URI (login, signup, consent, provider buttons): Chromium
// applies form-action to every redirect of a form submission, so
// "form-action 'self'" would block the final redirect to
// http://127.0.0.1:PORT/callback or cursor://... after consent. Those pages
// contain no markup from untrusted input that could inject a form, and their
// forms are CSRF-protected.
func (l *Login) securityHeaders(w http.ResponseWriter, nonce string, formAction bool) {
	h := w.Header()
	var csp strings.Builder
	csp.WriteString("default-src 'none'; style-src 'nonce-")
	csp.WriteString(nonce)
	csp.WriteString("'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'")
	if formAction {
		csp.WriteString("; form-action 'self' ")
		csp.WriteString(l.origin)
	}
	h.Set("Content-Security-Policy", csp.String())
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}
