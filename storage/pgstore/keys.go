package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// ListSigningKeys returns every signing key, oldest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT data FROM mcpauth_signing_keys ORDER BY created_at NULLS FIRST, kid COLLATE "C"`)
	if err != nil {
		return nil, dbErr("list signing keys", err)
	}
	return collect(rows, "list signing keys", func(data []byte) (storage.SigningKey, error) {
		var k storage.SigningKey
		return k, decode("list signing keys", data, &k)
	})
}

// AddSigningKey inserts key and retires every other unretired key, as a
// compare-and-swap on the newest unretired key id (expectActive, "" for
// none): ErrConflict when another instance rotated first. Writers of the
// key table are serialized by a table lock taken for the transaction;
// readers are not blocked.
func (s *Store) AddSigningKey(ctx context.Context, key storage.SigningKey, expectActive string, publishUntil time.Time) error {
	const op = "add signing key"
	if key.ID == "" {
		return errors.New("pgstore: add signing key: empty kid")
	}
	if key.CreatedAt.IsZero() {
		// RetiredAt of the keys it replaces is its activation.
		return errors.New("pgstore: add signing key: zero created_at")
	}
	if key.Activation().Before(key.CreatedAt) {
		return errors.New("pgstore: add signing key: activated before its creation")
	}
	data, err := encode(op, key)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE mcpauth_signing_keys IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return dbErr(op, err)
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mcpauth_signing_keys WHERE kid = $1)`, key.ID).Scan(&taken); err != nil {
			return dbErr(op, err)
		}
		if taken {
			return fmt.Errorf("pgstore: %s: %w", op, storage.ErrAlreadyExists)
		}
		rows, err := tx.Query(ctx, `SELECT data FROM mcpauth_signing_keys WHERE retired_at IS NULL`)
		if err != nil {
			return dbErr(op, err)
		}
		live, err := collect(rows, op, func(data []byte) (storage.SigningKey, error) {
			var k storage.SigningKey
			return k, decode(op, data, &k)
		})
		if err != nil {
			return err
		}
		active := ""
		var newest storage.SigningKey
		for i, k := range live {
			if i == 0 || k.CreatedAt.After(newest.CreatedAt) || (k.CreatedAt.Equal(newest.CreatedAt) && k.ID > newest.ID) {
				newest = k
				active = k.ID
			}
		}
		if active != expectActive {
			return fmt.Errorf("pgstore: %s: active key is %q, expected %q: %w", op, active, expectActive, storage.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mcpauth_signing_keys (kid, created_at, retired_at, data) VALUES ($1, $2, $3, $4)`,
			key.ID, ts(key.CreatedAt), ts(key.RetiredAt), data); err != nil {
			return dbErr(op, err)
		}
		for _, k := range live {
			k.RetiredAt = key.Activation()
			k.PublishUntil = publishUntil
			kd, err := encode(op, k)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE mcpauth_signing_keys SET retired_at = $2, data = $3 WHERE kid = $1`,
				k.ID, ts(k.RetiredAt), kd); err != nil {
				return dbErr(op, err)
			}
		}
		return nil
	})
}

// DeleteSigningKey removes a retired key: ErrNotFound for unknown ids,
// ErrConflict for a key that is not retired (the active key is never
// deleted).
func (s *Store) DeleteSigningKey(ctx context.Context, kid string) error {
	const op = "delete signing key"
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var retired *time.Time
		if err := tx.QueryRow(ctx, `SELECT retired_at FROM mcpauth_signing_keys WHERE kid = $1 FOR UPDATE`, kid).Scan(&retired); err != nil {
			return dbErr(op, err)
		}
		if retired == nil {
			return fmt.Errorf("pgstore: %s: key is not retired: %w", op, storage.ErrConflict)
		}
		_, err := tx.Exec(ctx, `DELETE FROM mcpauth_signing_keys WHERE kid = $1`, kid)
		return dbErr(op, err)
	})
}

// RewrapSigningKey replaces the private material of key kid when it still
// equals expect (a compare-and-swap under the row lock).
func (s *Store) RewrapSigningKey(ctx context.Context, kid string, expect, replacement []byte) error {
	const op = "rewrap signing key"
	if len(replacement) == 0 {
		return errors.New("pgstore: rewrap signing key: empty replacement")
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var data []byte
		if err := tx.QueryRow(ctx, `SELECT data FROM mcpauth_signing_keys WHERE kid = $1 FOR UPDATE`, kid).Scan(&data); err != nil {
			return dbErr(op, err)
		}
		var k storage.SigningKey
		if err := decode(op, data, &k); err != nil {
			return err
		}
		if !bytes.Equal(k.PrivateJWK, expect) {
			return fmt.Errorf("pgstore: %s: key %q changed: %w", op, kid, storage.ErrConflict)
		}
		k.PrivateJWK = replacement
		kd, err := encode(op, k)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE mcpauth_signing_keys SET data = $2 WHERE kid = $1`, kid, kd)
		return dbErr(op, err)
	})
}

// GetConsent returns the remembered consent of subject to client.
func (s *Store) GetConsent(ctx context.Context, subject, clientID string) (storage.Consent, error) {
	var data []byte
	if err := s.pool.QueryRow(ctx, `SELECT data FROM mcpauth_consents WHERE subject = $1 AND client_id = $2`,
		subject, clientID).Scan(&data); err != nil {
		return storage.Consent{}, dbErr("get consent", err)
	}
	var c storage.Consent
	return c, decode("get consent", data, &c)
}

// PutConsent creates or replaces a consent.
func (s *Store) PutConsent(ctx context.Context, c storage.Consent) error {
	if c.Subject == "" || c.ClientID == "" {
		return errors.New("pgstore: consent without subject or client")
	}
	data, err := encode("put consent", c)
	if err != nil {
		return err
	}
	_, err = s.execAudited(ctx, "put consent", `INSERT INTO mcpauth_consents (subject, client_id, expires_at, data) VALUES ($1, $2, $3, $4)
ON CONFLICT (subject, client_id) DO UPDATE SET expires_at = EXCLUDED.expires_at, data = EXCLUDED.data`,
		c.Subject, c.ClientID, ts(c.ExpiresAt), data)
	return err
}

// DeleteConsent forgets a consent; ErrNotFound when there is none.
func (s *Store) DeleteConsent(ctx context.Context, subject, clientID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM mcpauth_consents WHERE subject = $1 AND client_id = $2`, subject, clientID)
	if err != nil {
		return dbErr("delete consent", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("delete consent")
	}
	return nil
}

// DeleteClientConsents forgets every consent given to a client.
func (s *Store) DeleteClientConsents(ctx context.Context, clientID string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM mcpauth_consents WHERE client_id = $1`, clientID)
	if err != nil {
		return 0, dbErr("delete client consents", err)
	}
	return int(tag.RowsAffected()), nil
}
