package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// UseOnce implements storage.Replays with one statement: the insert takes
// the hash, or replaces a record that expired at now; a live record makes
// it affect no row (ErrReplayed). The primary key serializes concurrent
// callers across instances.
func (s *Store) UseOnce(ctx context.Context, hash []byte, expiresAt, now time.Time) error {
	if err := checkHash("replay", hash); err != nil {
		return err
	}
	if expiresAt.IsZero() {
		return errors.New("pgstore: use once: replay record without expiry")
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO mcpauth_replays (hash, expires_at) VALUES ($1, $2)
ON CONFLICT (hash) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE mcpauth_replays.expires_at <= $3`,
		hash, expiresAt, now)
	if err != nil {
		return dbErr("use once", err)
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrReplayed
	}
	return nil
}
