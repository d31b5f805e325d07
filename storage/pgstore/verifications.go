package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// SaveEmailVerification implements storage.EmailVerifications.
func (s *Store) SaveEmailVerification(ctx context.Context, v storage.EmailVerification) error {
	if err := checkHash("email verification", v.Hash); err != nil {
		return err
	}
	if v.AccountID == "" || v.ExpiresAt.IsZero() {
		return errors.New("pgstore: save email verification: without account or expiry")
	}
	data, err := encode("save email verification", v)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO mcpauth_email_verifications (hash, account_id, expires_at, data) VALUES ($1, $2, $3, $4)`,
		v.Hash, v.AccountID, ts(v.ExpiresAt), data)
	return dbErr("save email verification", err)
}

// GetEmailVerification implements storage.EmailVerifications.
func (s *Store) GetEmailVerification(ctx context.Context, hash []byte, now time.Time) (storage.EmailVerification, error) {
	const op = "get email verification"
	var data []byte
	if err := s.pool.QueryRow(ctx, `SELECT data FROM mcpauth_email_verifications WHERE hash = $1`, hash).Scan(&data); err != nil {
		return storage.EmailVerification{}, dbErr(op, err)
	}
	var v storage.EmailVerification
	if err := decode(op, data, &v); err != nil {
		return storage.EmailVerification{}, err
	}
	if expired(v.ExpiresAt, now) {
		return storage.EmailVerification{}, notFound(op)
	}
	v.Hash = append([]byte(nil), hash...)
	return v, nil
}

// ConsumeEmailVerification implements storage.EmailVerifications: the
// DELETE ... RETURNING of the presented row decides between concurrent
// consumers; the account's other verifications go in the same transaction.
func (s *Store) ConsumeEmailVerification(ctx context.Context, hash []byte, now time.Time) (storage.EmailVerification, error) {
	const op = "consume email verification"
	var v storage.EmailVerification
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		v = storage.EmailVerification{}
		var data []byte
		if err := tx.QueryRow(ctx, `DELETE FROM mcpauth_email_verifications WHERE hash = $1 RETURNING data`, hash).Scan(&data); err != nil {
			return dbErr(op, err)
		}
		if err := decode(op, data, &v); err != nil {
			return err
		}
		if expired(v.ExpiresAt, now) {
			return notFound(op) // rolls the delete back
		}
		_, err := tx.Exec(ctx, `DELETE FROM mcpauth_email_verifications WHERE account_id = $1`, v.AccountID)
		return dbErr(op, err)
	})
	if err != nil {
		return storage.EmailVerification{}, err
	}
	v.Hash = append([]byte(nil), hash...)
	return v, nil
}
