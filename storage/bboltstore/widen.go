package bboltstore

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// WidenGrant implements storage.Grants in one write transaction.
func (s *Store) WidenGrant(ctx context.Context, id string, scopes, tools []string, now time.Time) (storage.Grant, error) {
	var g storage.Grant
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktGrants)
		var cur storage.Grant
		if err := getJSON(b, []byte(id), &cur); err != nil {
			return err
		}
		next, err := storage.Widen(cur, scopes, tools, now)
		if err != nil {
			return err
		}
		g = next
		return putJSON(b, []byte(id), next)
	})
	if err != nil {
		return storage.Grant{}, err
	}
	return g, nil
}
