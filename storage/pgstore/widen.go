package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// WidenGrant implements storage.Grants under the grant's row lock, so that
// it serializes with rotations and revocations on every instance.
func (s *Store) WidenGrant(ctx context.Context, id string, scopes, tools []string, now time.Time) (storage.Grant, error) {
	const op = "widen grant"
	var g storage.Grant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var data []byte
		if err := tx.QueryRow(ctx, `SELECT data FROM mcpauth_grants WHERE id = $1 FOR UPDATE`, id).Scan(&data); err != nil {
			return dbErr(op, err)
		}
		var cur storage.Grant
		if err := decode(op, data, &cur); err != nil {
			return err
		}
		next, err := storage.Widen(cur, scopes, tools, now)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return notFound(op)
		case err != nil:
			return fmt.Errorf("pgstore: %s: %w", op, err)
		}
		g = next
		return updateGrant(ctx, tx, op, next)
	})
	if err != nil {
		return storage.Grant{}, err
	}
	return g, nil
}
