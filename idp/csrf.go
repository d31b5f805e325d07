package idp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
)

// CSRFField is the name of the form field carrying the CSRF token.
const CSRFField = "csrf_token"

// Token kinds. A session token is an HMAC of purposeSession under the
// session's CSRFSecret (synchronizer token); a pre-session token is an HMAC
// of purposePre keyed by the random value of the double-submit cookie, so a
// forged cookie value without its HMAC, or an HMAC without the cookie, fails.
const (
	purposeSession = "mcpauth-csrf-session-v1"
	purposePre     = "mcpauth-csrf-presession-v1"
	tokenSession   = "s."
	tokenPre       = "p."
)

var (
	errCSRFMissing = errors.New("idp: csrf: token missing")
	errCSRFInvalid = errors.New("idp: csrf: token invalid")
	errCSRFOrigin  = errors.New("idp: csrf: cross-origin request")
	errCSRFMethod  = errors.New("idp: csrf: not a POST")
)

var b64url = base64.RawURLEncoding

func mac(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// preSessionKey returns the browser's double-submit cookie value, setting a
// fresh one when there is none (or it is malformed).
func (l *Login) preSessionKey(w http.ResponseWriter, r *http.Request) []byte {
	if c, err := r.Cookie(l.csrfCookie); err == nil {
		if k, err := b64url.DecodeString(c.Value); err == nil && len(k) == 32 {
			return k
		}
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	http.SetCookie(w, &http.Cookie{
		Name:     l.csrfCookie,
		Value:    b64url.EncodeToString(k),
		Path:     "/",
		Secure:   l.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	// Later reads in this request (a second form on the same page) see it.
	r.AddCookie(&http.Cookie{Name: l.csrfCookie, Value: b64url.EncodeToString(k)})
	return k
}

// preSessionToken returns the token for a form shown before sign-in.
func (l *Login) preSessionToken(w http.ResponseWriter, r *http.Request) string {
	return tokenPre + b64url.EncodeToString(mac(l.preSessionKey(w, r), purposePre))
}

// sessionToken returns the token for a form of a signed-in browser.
func sessionToken(s sessionView) string {
	return tokenSession + b64url.EncodeToString(mac(s.CSRFSecret, purposeSession))
}

// formToken returns the right token for a page: the session's when the
// browser is signed in, else a pre-session one.
func (l *Login) formToken(w http.ResponseWriter, r *http.Request) string {
	if s, ok := l.currentSession(r); ok {
		return sessionToken(s)
	}
	return l.preSessionToken(w, r)
}

// VerifyCSRF checks a POST from one of the hosted login's pages: the method,
// the Origin (unless "null") and Sec-Fetch-Site headers when the browser sent
// them, and the
// token in the form field csrf_token (bound to the session, or to the
// pre-session cookie for forms shown before sign-in).
func (l *Login) VerifyCSRF(r *http.Request) error {
	if r.Method != http.MethodPost {
		return errCSRFMethod
	}
	// Our pages send Referrer-Policy: no-referrer, under which browsers send
	// "Origin: null" even for same-origin form posts (Fetch, "serializing a
	// request origin"); Sec-Fetch-Site still tells same-origin apart.
	if o := r.Header.Get("Origin"); o != "" && o != "null" && o != l.origin {
		return errCSRFOrigin
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return errCSRFOrigin
	}
	tok := r.PostFormValue(CSRFField)
	if tok == "" {
		return errCSRFMissing
	}
	switch {
	case strings.HasPrefix(tok, tokenSession):
		s, ok := l.currentSession(r)
		if !ok {
			return errCSRFInvalid
		}
		return checkMAC(tok[len(tokenSession):], mac(s.CSRFSecret, purposeSession))
	case strings.HasPrefix(tok, tokenPre):
		c, err := r.Cookie(l.csrfCookie)
		if err != nil {
			return errCSRFInvalid
		}
		k, err := b64url.DecodeString(c.Value)
		if err != nil || len(k) != 32 {
			return errCSRFInvalid
		}
		return checkMAC(tok[len(tokenPre):], mac(k, purposePre))
	}
	return errCSRFInvalid
}

func checkMAC(got string, want []byte) error {
	g, err := b64url.DecodeString(got)
	if err != nil || !hmac.Equal(g, want) {
		return errCSRFInvalid
	}
	return nil
}
