package idp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// BrowserBinding ties an upstream round trip to the browser that started
// it: a fresh 256-bit key in an HttpOnly cookie, and a single-use ticket
// stored under the key's SHA-256 with the kind's pending state. Only the
// browser holding the cookie can complete the flow, once; the key also
// derives the kind's per-flow values (OIDC state, nonce, PKCE verifier).
type BrowserBinding struct {
	// Cookie is the cookie's name (with the __Host- prefix over https).
	Cookie string
	// Secure and SameSite are the cookie's attributes: Lax for a callback
	// reached by a top-level GET redirect, None (Secure) for a cross-site
	// POST such as a SAML response.
	Secure   bool
	SameSite http.SameSite
	// TicketKind is the storage.Ticket kind of the pending state.
	TicketKind string
	// TTL bounds the round trip (cookie and ticket).
	TTL   time.Duration
	Store storage.Tickets
	Now   func() time.Time
}

// Errors of BrowserBinding.Take.
var (
	// ErrBindingMissing: no well-formed binding cookie came back.
	ErrBindingMissing = errors.New("idp: binding cookie missing")
	// ErrBindingUnknown: the cookie names no pending ticket (expired, used,
	// or never issued).
	ErrBindingUnknown = errors.New("idp: binding unknown")
)

var bindingB64 = base64.RawURLEncoding

// Begin stores pending under a fresh key, sets the cookie and returns the
// key.
func (b BrowserBinding) Begin(ctx context.Context, w http.ResponseWriter, pending []byte) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("idp: binding key: %w", err)
	}
	now := b.Now()
	if err := b.Store.PutTicket(ctx, storage.Ticket{Kind: b.TicketKind, Hash: bindingHash(key), Value: pending, ExpiresAt: now.Add(b.TTL)}); err != nil {
		return nil, fmt.Errorf("idp: storing the binding: %w", err)
	}
	b.setCookie(w, bindingB64.EncodeToString(key), int(b.TTL/time.Second))
	return key, nil
}

// Take reads and clears the cookie, then consumes its ticket: the key and
// the pending state, or ErrBindingMissing, ErrBindingUnknown or a store
// error.
func (b BrowserBinding) Take(w http.ResponseWriter, r *http.Request) (key, pending []byte, err error) {
	ck, err := r.Cookie(b.Cookie)
	if err == nil {
		key, err = bindingB64.DecodeString(ck.Value)
	}
	b.setCookie(w, "", -1)
	if err != nil || len(key) != 32 {
		return nil, nil, ErrBindingMissing
	}
	t, err := b.Store.TakeTicket(r.Context(), b.TicketKind, bindingHash(key), b.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, ErrBindingUnknown
	}
	if err != nil {
		return nil, nil, fmt.Errorf("idp: taking the binding: %w", err)
	}
	return key, t.Value, nil
}

func (b BrowserBinding) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: b.Cookie, Value: value, Path: "/", MaxAge: maxAge,
		Secure: b.Secure, HttpOnly: true, SameSite: b.SameSite})
}

func bindingHash(key []byte) []byte {
	h := sha256.Sum256(key)
	return h[:]
}
