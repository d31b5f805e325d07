package bboltstore

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// replayRecord is the value of v1/replays/<hash>.
type replayRecord struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// UseOnce implements storage.Replays in one write transaction (bbolt
// serializes writers, so exactly one of concurrent callers wins).
func (s *Store) UseOnce(ctx context.Context, hash []byte, expiresAt, now time.Time) error {
	if err := checkHash("replay", hash); err != nil {
		return err
	}
	if expiresAt.IsZero() {
		return errors.New("bboltstore: replay record without expiry")
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktReplays)
		var old replayRecord
		switch err := getJSON(b, hash, &old); {
		case err == nil:
			if !expired(old.ExpiresAt, now) {
				return storage.ErrReplayed
			}
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		return putJSON(b, hash, replayRecord{ExpiresAt: expiresAt})
	})
}
