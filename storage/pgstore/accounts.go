package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// email returns the indexed form of an account's email: lower-cased (the
// caller normalizes already; folding again means two spellings of one
// address can never be two accounts), NULL when empty so that accounts
// without an email do not collide.
func email(e string) *string {
	if e == "" {
		return nil
	}
	e = strings.ToLower(e)
	return &e
}

// CreateAccount stores a new account; ErrAlreadyExists when the id or the
// email is taken.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	if a.ID == "" {
		return errors.New("pgstore: create account: empty id")
	}
	data, err := encode("create account", a)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO mcpauth_accounts (id, email, data) VALUES ($1, $2, $3)`, a.ID, email(a.Email), data)
	return dbErr("create account", err)
}

// GetAccount returns the account with that id.
func (s *Store) GetAccount(ctx context.Context, id string) (storage.Account, error) {
	return s.account(ctx, "get account", `SELECT data FROM mcpauth_accounts WHERE id = $1`, id)
}

// GetAccountByEmail returns the account with that (normalized) email.
func (s *Store) GetAccountByEmail(ctx context.Context, e string) (storage.Account, error) {
	if e == "" {
		return storage.Account{}, notFound("get account by email")
	}
	return s.account(ctx, "get account by email", `SELECT data FROM mcpauth_accounts WHERE email = $1`, *email(e))
}

func (s *Store) account(ctx context.Context, op, q string, args ...any) (storage.Account, error) {
	var data []byte
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&data); err != nil {
		return storage.Account{}, dbErr(op, err)
	}
	var a storage.Account
	return a, decode(op, data, &a)
}

// UpdateAccount replaces an existing account: ErrNotFound when there is
// none, ErrAlreadyExists when its new email belongs to another account.
func (s *Store) UpdateAccount(ctx context.Context, a storage.Account) error {
	if a.ID == "" {
		return errors.New("pgstore: account without id")
	}
	data, err := encode("update account", a)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE mcpauth_accounts SET email = $2, data = $3 WHERE id = $1`, a.ID, email(a.Email), data)
	if err != nil {
		return dbErr("update account", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update account")
	}
	return nil
}

// ListAccounts returns every account, ordered by id (bytewise, whatever the
// database collation, like the other backends).
func (s *Store) ListAccounts(ctx context.Context) ([]storage.Account, error) {
	rows, err := s.pool.Query(ctx, `SELECT data FROM mcpauth_accounts ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, dbErr("list accounts", err)
	}
	return collect(rows, "list accounts", func(data []byte) (storage.Account, error) {
		var a storage.Account
		return a, decode("list accounts", data, &a)
	})
}

// LinkIdentity binds (provider, subject) to an account. Linking it again to
// the same account is a no-op; ErrAlreadyExists when it is linked to
// another account, ErrNotFound when the account does not exist.
func (s *Store) LinkIdentity(ctx context.Context, provider, subject, accountID string) error {
	const op = "link identity"
	if provider == "" || subject == "" {
		return errors.New("pgstore: identity without provider or subject")
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// Lock the account: it must exist (ErrNotFound otherwise).
		var id string
		if err := tx.QueryRow(ctx, `SELECT id FROM mcpauth_accounts WHERE id = $1 FOR SHARE`, accountID).Scan(&id); err != nil {
			return dbErr(op, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mcpauth_identities (provider, subject, account_id) VALUES ($1, $2, $3)
ON CONFLICT (provider, subject) DO NOTHING`, provider, subject, accountID); err != nil {
			return dbErr(op, err)
		}
		var owner string
		if err := tx.QueryRow(ctx, `SELECT account_id FROM mcpauth_identities WHERE provider = $1 AND subject = $2`,
			provider, subject).Scan(&owner); err != nil {
			return dbErr(op, err)
		}
		if owner != accountID {
			return fmt.Errorf("pgstore: %s: identity linked to another account: %w", op, storage.ErrAlreadyExists)
		}
		return nil
	})
}

// AccountByIdentity returns the account (provider, subject) is linked to.
func (s *Store) AccountByIdentity(ctx context.Context, provider, subject string) (storage.Account, error) {
	return s.account(ctx, "account by identity", `SELECT a.data FROM mcpauth_identities i
JOIN mcpauth_accounts a ON a.id = i.account_id WHERE i.provider = $1 AND i.subject = $2`, provider, subject)
}

// CreateSession stores a new browser session under its hash.
func (s *Store) CreateSession(ctx context.Context, ss storage.Session) error {
	if err := checkHash("session", ss.Hash); err != nil {
		return err
	}
	if ss.AccountID == "" {
		return errors.New("pgstore: create session: session without account")
	}
	if ss.ExpiresAt.IsZero() {
		return errors.New("pgstore: create session: session without expiry")
	}
	data, err := encode("create session", ss)
	if err != nil {
		return err
	}
	_, err = s.execAudited(ctx, "create session", `INSERT INTO mcpauth_sessions (hash, account_id, expires_at, data) VALUES ($1, $2, $3, $4)`,
		ss.Hash, ss.AccountID, ts(ss.ExpiresAt), data)
	return err
}

// GetSession returns the session stored under hash.
func (s *Store) GetSession(ctx context.Context, hash []byte) (storage.Session, error) {
	var data []byte
	if err := s.pool.QueryRow(ctx, `SELECT data FROM mcpauth_sessions WHERE hash = $1`, hash).Scan(&data); err != nil {
		return storage.Session{}, dbErr("get session", err)
	}
	var ss storage.Session
	if err := decode("get session", data, &ss); err != nil {
		return storage.Session{}, err
	}
	ss.Hash = append([]byte(nil), hash...)
	return ss, nil
}

// TouchSession moves LastSeenAt forward (never back); ErrNotFound when the
// session does not exist.
func (s *Store) TouchSession(ctx context.Context, hash []byte, now time.Time) error {
	const op = "touch session"
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var data []byte
		if err := tx.QueryRow(ctx, `SELECT data FROM mcpauth_sessions WHERE hash = $1 FOR UPDATE`, hash).Scan(&data); err != nil {
			return dbErr(op, err)
		}
		var ss storage.Session
		if err := decode(op, data, &ss); err != nil {
			return err
		}
		if !now.After(ss.LastSeenAt) {
			return nil
		}
		ss.LastSeenAt = now
		if data, err := encode(op, ss); err != nil {
			return err
		} else if _, err := tx.Exec(ctx, `UPDATE mcpauth_sessions SET data = $2 WHERE hash = $1`, hash, data); err != nil {
			return dbErr(op, err)
		}
		return nil
	})
}

// DeleteSession removes a session; ErrNotFound when there is none.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM mcpauth_sessions WHERE hash = $1`, hash)
	if err != nil {
		return dbErr("delete session", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("delete session")
	}
	return nil
}

// DeleteAccountSessions removes every session of an account.
func (s *Store) DeleteAccountSessions(ctx context.Context, accountID string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM mcpauth_sessions WHERE account_id = $1`, accountID)
	if err != nil {
		return 0, dbErr("delete account sessions", err)
	}
	return int(tag.RowsAffected()), nil
}

// PutTicket stores a single-use ticket under its hash; ErrAlreadyExists
// when the hash is taken.
func (s *Store) PutTicket(ctx context.Context, t storage.Ticket) error {
	if err := checkHash("ticket", t.Hash); err != nil {
		return err
	}
	if t.Kind == "" {
		return errors.New("pgstore: put ticket: ticket without kind")
	}
	if t.ExpiresAt.IsZero() {
		return errors.New("pgstore: put ticket: ticket without expiry")
	}
	data, err := encode("put ticket", t)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO mcpauth_tickets (hash, kind, expires_at, data) VALUES ($1, $2, $3, $4)`,
		t.Hash, t.Kind, ts(t.ExpiresAt), data)
	return dbErr("put ticket", err)
}

// TakeTicket returns and deletes a ticket (DELETE ... RETURNING): of
// concurrent takers exactly one gets it. ErrNotFound when it is unknown, of
// another kind, already taken or expired; a refused take leaves the ticket
// where it is (DeleteExpired removes it later).
func (s *Store) TakeTicket(ctx context.Context, kind string, hash []byte, now time.Time) (storage.Ticket, error) {
	const op = "take ticket"
	var t storage.Ticket
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		t = storage.Ticket{}
		var data []byte
		if err := tx.QueryRow(ctx, `DELETE FROM mcpauth_tickets WHERE hash = $1 AND kind = $2 RETURNING data`,
			hash, kind).Scan(&data); err != nil {
			return dbErr(op, err)
		}
		if err := decode(op, data, &t); err != nil {
			return err
		}
		if t.Kind != kind || expired(t.ExpiresAt, now) {
			return notFound(op) // rolls the delete back
		}
		return nil
	})
	if err != nil {
		return storage.Ticket{}, err
	}
	t.Hash = append([]byte(nil), hash...)
	return t, nil
}
