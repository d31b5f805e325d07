package idp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// touchEvery bounds session writes: LastSeenAt moves at most once per
// interval, so signed-in browsing is not a write per request.
const touchEvery = time.Minute

// sessionView is a live session with its account.
type sessionView struct {
	storage.Session
	Account storage.Account
}

func hashID(id []byte) []byte {
	h := sha256.Sum256(id)
	return h[:]
}

// sessionHash returns the SHA-256 of the session id in the request's cookie.
func (l *Login) sessionHash(r *http.Request) ([]byte, bool) {
	c, err := r.Cookie(l.sessionCookie)
	if err != nil {
		return nil, false
	}
	id, err := b64url.DecodeString(c.Value)
	if err != nil || len(id) != 32 {
		return nil, false
	}
	return hashID(id), true
}

// currentSession returns the live session of the request, if any. Expired
// sessions (idle or absolute) and sessions of disabled or deleted accounts
// are deleted and not returned.
func (l *Login) currentSession(r *http.Request) (sessionView, bool) {
	h, ok := l.sessionHash(r)
	if !ok {
		return sessionView{}, false
	}
	ctx := r.Context()
	s, err := l.store.GetSession(ctx, h)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			l.log.Error("idp: session lookup failed", "error", err)
		}
		return sessionView{}, false
	}
	s.Hash = h
	now := l.now()
	if !now.Before(s.ExpiresAt) || !now.Before(s.CreatedAt.Add(l.cfg.SessionAbsolute)) || !now.Before(s.LastSeenAt.Add(l.cfg.SessionIdle)) {
		l.dropSession(ctx, h)
		return sessionView{}, false
	}
	a, err := l.store.GetAccount(ctx, s.AccountID)
	if err != nil || a.Disabled {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			l.log.Error("idp: account lookup failed", "error", err)
			return sessionView{}, false
		}
		l.dropSession(ctx, h)
		return sessionView{}, false
	}
	// A password change after sign-in ends password sessions started before it.
	if !a.PasswordChangedAt.IsZero() && a.PasswordChangedAt.After(s.CreatedAt) {
		l.dropSession(ctx, h)
		return sessionView{}, false
	}
	return sessionView{Session: s, Account: a}, true
}

func (l *Login) dropSession(ctx context.Context, h []byte) {
	if err := l.store.DeleteSession(ctx, h); err != nil && !errors.Is(err, storage.ErrNotFound) {
		l.log.Error("idp: deleting session failed", "error", err)
	}
}

// Identify returns the identity signed in on this browser, if any, and moves
// the session's idle timer forward.
func (l *Login) Identify(r *http.Request) (authserver.Identity, bool) {
	s, ok := l.currentSession(r)
	if !ok {
		return authserver.Identity{}, false
	}
	now := l.now()
	if now.Sub(s.LastSeenAt) >= touchEvery {
		if err := l.store.TouchSession(r.Context(), s.Hash, now); err != nil {
			l.log.Warn("idp: touching session failed", "error", err)
		}
	}
	id := identityOf(s)
	id.MustVerifyEmail = l.mustVerify(s.Account)
	return id, true
}

func identityOf(s sessionView) authserver.Identity {
	return authserver.Identity{
		Subject:       s.Account.ID,
		Email:         s.Account.Email,
		EmailVerified: s.Account.EmailVerified,
		Name:          s.Account.Name,
		Groups:        append([]string(nil), s.Account.Groups...),
		AuthTime:      s.CreatedAt,
		Method:        s.Method,
	}
}

// startSession signs the browser in as account: any session it had is
// deleted first (the id is renewed at every login), a new random id is
// stored under its hash and set in the session cookie. The login's audit
// event commits with the session (storage.WithTxAudit): a sign-in that
// happened always has its record.
func (l *Login) startSession(w http.ResponseWriter, r *http.Request, accountID, method string, login storage.AuditEvent) error {
	ctx := r.Context()
	if h, ok := l.sessionHash(r); ok {
		l.dropSession(ctx, h)
	}
	id := make([]byte, 32)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("idp: session id: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("idp: session secret: %w", err)
	}
	now := l.now()
	ua := r.UserAgent()
	if len(ua) > 256 {
		ua = ua[:256]
	}
	s := storage.Session{
		Hash:       hashID(id),
		AccountID:  accountID,
		Method:     method,
		CSRFSecret: secret,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(l.cfg.SessionAbsolute),
		UserAgent:  ua,
	}
	login.IP = l.cfg.ClientIP(r)
	if login.Time.IsZero() {
		login.Time = now
	}
	txCtx := storage.WithTxAudit(ctx, func(error, *storage.Grant) []storage.AuditEvent { return []storage.AuditEvent{login} })
	if err := l.store.CreateSession(txCtx, s); err != nil {
		return fmt.Errorf("idp: creating session: %w", err)
	}
	if l.cfg.OnEvent != nil {
		l.cfg.OnEvent(login)
	}
	http.SetCookie(w, &http.Cookie{
		Name:  l.sessionCookie,
		Value: b64url.EncodeToString(id),
		Path:  "/",
		// Relative, so a skewed browser clock cannot shorten or extend it.
		MaxAge:   int(l.cfg.SessionAbsolute / time.Second),
		Secure:   l.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// endSession deletes the browser's session and clears the cookie.
func (l *Login) endSession(w http.ResponseWriter, r *http.Request) {
	if h, ok := l.sessionHash(r); ok {
		l.dropSession(r.Context(), h)
	}
	http.SetCookie(w, &http.Cookie{
		Name:     l.sessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Secure:   l.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}
