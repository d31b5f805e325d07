package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mcpauth/caddy-mcpauth/idp/password"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// seed creates the configured accounts, or brings an existing one's
// password in line with the configuration (the configuration is the source
// of truth for seeded accounts; a change revokes the account's sessions and
// grants, as every password change does).
func (l *Login) seed(ctx context.Context) error {
	for _, s := range l.cfg.SeedAccounts {
		email, ok := normalizeEmail(s.Email)
		if !ok {
			return fmt.Errorf("idp: seed account %q: not an email address", s.Email)
		}
		if s.Password != "" && s.PasswordHash != "" {
			return fmt.Errorf("idp: seed account %s: set password or password hash, not both", email)
		}
		if s.PasswordHash != "" {
			if err := password.CheckHash(s.PasswordHash); errors.Is(err, password.ErrMalformed) {
				return fmt.Errorf("idp: seed account %s: password hash is not an argon2id PHC string", email)
			} else if err != nil {
				return fmt.Errorf("idp: seed account %s: password hash parameters are below m=%d,t=%d", email, password.MinParams.Memory, password.MinParams.Time)
			}
		}
		if s.Password != "" {
			if err := password.Check(s.Password); err != nil {
				return fmt.Errorf("idp: seed account %s: %w", email, err)
			}
		}
		existing, err := l.store.GetAccountByEmail(ctx, email)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			hash := s.PasswordHash
			if s.Password != "" {
				if hash, err = l.hasher.Hash(s.Password); err != nil {
					return fmt.Errorf("idp: seed account %s: %w", email, err)
				}
			}
			now := l.now()
			a := storage.Account{ID: newAccountID(), Email: email, Name: cleanName(s.Name), EmailVerified: true, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
			if hash != "" {
				a.PasswordChangedAt = now
			}
			if err := l.store.CreateAccount(ctx, a); err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("idp: seed account %s: %w", email, err)
			}
		case err != nil:
			return fmt.Errorf("idp: seed account %s: %w", email, err)
		default:
			changed := false
			if s.PasswordHash != "" && existing.PasswordHash != s.PasswordHash {
				existing.PasswordHash, changed = s.PasswordHash, true
			}
			if s.Password != "" {
				ok := false
				if existing.PasswordHash != "" {
					ok, _, _ = l.hasher.Verify(existing.PasswordHash, s.Password)
				}
				if !ok {
					h, err := l.hasher.Hash(s.Password)
					if err != nil {
						return fmt.Errorf("idp: seed account %s: %w", email, err)
					}
					existing.PasswordHash, changed = h, true
				}
			}
			if n := cleanName(s.Name); n != "" && n != existing.Name {
				existing.Name = n
				existing.UpdatedAt = l.now()
				if !changed {
					if err := l.store.UpdateAccount(ctx, existing); err != nil {
						return fmt.Errorf("idp: seed account %s: %w", email, err)
					}
				}
			}
			if changed {
				now := l.now()
				existing.PasswordChangedAt, existing.UpdatedAt = now, now
				if err := l.store.UpdateAccount(ctx, existing); err != nil {
					return fmt.Errorf("idp: seed account %s: %w", email, err)
				}
				n, err := l.passwordChanged(ctx, existing.ID)
				if err != nil {
					return fmt.Errorf("idp: seed account %s: %w", email, err)
				}
				l.auditCtx(ctx, storage.AuditEvent{Type: audit.AccountPasswordChanged, Outcome: "success", Subject: existing.ID,
					Detail: map[string]string{"by": "configuration", "grants_revoked": fmt.Sprint(n)}})
				l.log.Info("idp: seeded account password updated from configuration", "account", existing.ID, "grants_revoked", n)
			}
		}
	}
	return nil
}

// createAccount creates a password account (policy already checked).
func (l *Login) createAccount(ctx context.Context, email, name, pw string) (storage.Account, error) {
	h, err := l.hasher.Hash(pw)
	if err != nil {
		return storage.Account{}, err
	}
	now := l.now()
	a := storage.Account{ID: newAccountID(), Email: email, Name: name, PasswordHash: h, CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now}
	if err := l.store.CreateAccount(ctx, a); err != nil {
		return storage.Account{}, fmt.Errorf("idp: creating account: %w", err)
	}
	return a, nil
}

// CreateAccount creates a password account as the operator (admin API,
// CLI). The password must satisfy the policy; the email is marked verified
// (the operator vouches for it). ErrAlreadyExists (wrapped) when the email
// is taken.
func (l *Login) CreateAccount(ctx context.Context, email, name, pw string) (storage.Account, error) {
	e, ok := normalizeEmail(email)
	if !ok {
		return storage.Account{}, fmt.Errorf("%w: %q", ErrNotEmail, email)
	}
	if err := password.Check(pw, e); err != nil {
		return storage.Account{}, err
	}
	h, err := l.hasher.Hash(pw)
	if err != nil {
		return storage.Account{}, err
	}
	now := l.now()
	a := storage.Account{ID: newAccountID(), Email: e, Name: cleanName(name), EmailVerified: true, PasswordHash: h, CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now}
	if err := l.store.CreateAccount(ctx, a); err != nil {
		return storage.Account{}, fmt.Errorf("idp: creating account: %w", err)
	}
	l.auditCtx(ctx, storage.AuditEvent{Type: audit.AccountCreated, Outcome: "success", Subject: a.ID, Detail: map[string]string{"by": "operator"}})
	return a, nil
}

// SetPassword sets an account's password (policy checked) as the operator
// (admin API, CLI), ends all its browser sessions and revokes all its grants
// (requirements 10 and 41: their refresh tokens stop working and the guard
// refuses their access tokens). It returns the number of grants revoked.
func (l *Login) SetPassword(ctx context.Context, accountID, pw string) (int, error) {
	a, err := l.store.GetAccount(ctx, accountID)
	if err != nil {
		return 0, fmt.Errorf("idp: set password: %w", err)
	}
	if err := password.Check(pw, a.Email); err != nil {
		return 0, err
	}
	h, err := l.hasher.Hash(pw)
	if err != nil {
		return 0, err
	}
	now := l.now()
	a.PasswordHash, a.PasswordChangedAt, a.UpdatedAt = h, now, now
	if err := l.store.UpdateAccount(ctx, a); err != nil {
		return 0, fmt.Errorf("idp: set password: %w", err)
	}
	n, err := l.passwordChanged(ctx, a.ID)
	if err != nil {
		return n, fmt.Errorf("idp: set password: %w", err)
	}
	l.auditCtx(ctx, storage.AuditEvent{Type: audit.AccountPasswordChanged, Outcome: "success", Subject: a.ID,
		Detail: map[string]string{"by": "operator", "grants_revoked": fmt.Sprint(n)}})
	return n, nil
}

// passwordChanged ends what the old password opened, after the new one is
// stored (requirement 41).
func (l *Login) passwordChanged(ctx context.Context, accountID string) (int, error) {
	return l.endAccountAccess(ctx, accountID, ReasonPasswordChanged)
}

// endAccountAccess ends an account's browser sessions, then its grants (last,
// so that a grant minted from a session in the meantime is revoked too), and
// audits the revocation. It returns the number of grants revoked. A password
// change and a confirmed verification link (which may oust a squatter) both
// come through here.
func (l *Login) endAccountAccess(ctx context.Context, accountID, reason string) (int, error) {
	if _, err := l.store.DeleteAccountSessions(ctx, accountID); err != nil {
		return 0, fmt.Errorf("revoking sessions: %w", err)
	}
	n, err := l.store.RevokeSubjectGrants(ctx, accountID, reason, l.now())
	if err != nil {
		return 0, fmt.Errorf("revoking grants: %w", err)
	}
	l.auditCtx(ctx, storage.AuditEvent{Type: audit.SubjectRevoked, Outcome: "success", Subject: accountID,
		Detail: map[string]string{"grants": fmt.Sprint(n), "reason": reason}})
	return n, nil
}

// ReasonPasswordChanged is the RevokedReason of grants ended by a password
// change.
const ReasonPasswordChanged = "password_changed"

// ReasonEmailVerified is the RevokedReason of grants ended when a
// verification link proved the address: grants obtained before the proof
// (perhaps by whoever squatted the address) do not outlive it.
const ReasonEmailVerified = "email_verified"

// ErrNotEmail is returned for an account email that is not an address.
var ErrNotEmail = errors.New("idp: not an email address")

// Reasons recorded on grants ended by an operator action on an account.
const (
	// ReasonAccountDisabled: the operator disabled the account.
	ReasonAccountDisabled = "account_disabled"
	// ReasonSessionsRevoked: the operator ended the account's sessions.
	ReasonSessionsRevoked = "sessions_revoked"
)

// SetAccountDisabled disables or enables an account as the operator.
// Disabling ends its browser sessions and revokes its grants (their refresh
// tokens stop working and the guard refuses their access tokens); it returns
// the number of grants revoked. Enabling restores nothing that was ended.
func (l *Login) SetAccountDisabled(ctx context.Context, accountID string, disabled bool) (int, error) {
	a, err := l.store.GetAccount(ctx, accountID)
	if err != nil {
		return 0, fmt.Errorf("idp: set disabled: %w", err)
	}
	a.Disabled, a.UpdatedAt = disabled, l.now()
	if err := l.store.UpdateAccount(ctx, a); err != nil {
		return 0, fmt.Errorf("idp: set disabled: %w", err)
	}
	typ := audit.AccountEnabled
	if disabled {
		typ = audit.AccountDisabled
	}
	l.auditCtx(ctx, storage.AuditEvent{Type: typ, Outcome: "success", Subject: a.ID})
	if !disabled {
		return 0, nil
	}
	n, err := l.endAccountAccess(ctx, a.ID, ReasonAccountDisabled)
	if err != nil {
		return n, fmt.Errorf("idp: set disabled: %w", err)
	}
	return n, nil
}

// RevokeSessions ends every browser session of an account and revokes its
// grants (what the sessions opened). It returns both counts.
func (l *Login) RevokeSessions(ctx context.Context, accountID string) (sessions, grants int, err error) {
	sessions, err = l.store.DeleteAccountSessions(ctx, accountID)
	if err != nil {
		return 0, 0, fmt.Errorf("idp: revoke sessions: %w", err)
	}
	l.auditCtx(ctx, storage.AuditEvent{Type: audit.SessionRevoked, Outcome: "success", Subject: accountID, Detail: map[string]string{"count": fmt.Sprint(sessions)}})
	grants, err = l.endAccountAccess(ctx, accountID, ReasonSessionsRevoked)
	if err != nil {
		return sessions, grants, fmt.Errorf("idp: revoke sessions: %w", err)
	}
	return sessions, grants, nil
}

// audit stores an event of a browser request (with the client IP).
// audit records an event of a browser request: through the shared batched
// writer (Config.Audit) when there is one, except a known account's login
// failure, written before the answer (a sign-in is written with its
// session, see startSession).
func (l *Login) audit(r *http.Request, ev storage.AuditEvent) {
	ev.IP = l.cfg.ClientIP(r)
	if l.cfg.Audit == nil || ev.Type == audit.LoginFailure {
		l.auditCtx(r.Context(), ev)
		return
	}
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	l.cfg.Audit.Add(r.Context(), ev)
	if l.cfg.OnEvent != nil {
		l.cfg.OnEvent(ev)
	}
}

// refused counts an unauthenticated refusal (CSRF failure, throttled
// attempt, refused upstream callback): it reaches OnEvent (metrics) every
// time but the audit log only as one aggregated record per reason, source
// prefix and minute, so a flood cannot fill the store (requirement 40).
func (l *Login) refused(r *http.Request, ev storage.AuditEvent) {
	ev.IP = l.cfg.ClientIP(r)
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	if l.cfg.OnEvent != nil {
		l.cfg.OnEvent(ev)
	}
	l.cfg.Refusals.Add(r.Context(), ev)
}

// auditCtx writes ev before returning: operator actions on accounts and
// sessions, account links, a known account's login failure.
func (l *Login) auditCtx(ctx context.Context, ev storage.AuditEvent) {
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	// The audit write must not be cancelled by a client that went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.store.AppendAudit(ctx, ev); err != nil {
		l.log.Error("idp: audit write failed", "type", ev.Type, "error", err)
	}
	if l.cfg.OnEvent != nil {
		l.cfg.OnEvent(ev)
	}
}
