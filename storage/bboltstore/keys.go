package bboltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func compareKeys(a, b storage.SigningKey) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func allKeys(tx *bolt.Tx) ([]storage.SigningKey, error) {
	var out []storage.SigningKey
	err := bucket(tx, bktKeys).ForEach(func(_, v []byte) error {
		var k storage.SigningKey
		if err := decode(v, &k); err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	slices.SortFunc(out, compareKeys)
	return out, err
}

// ListSigningKeys implements storage.Keys, oldest first (CreatedAt, then ID).
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	var out []storage.SigningKey
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = allKeys(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AddSigningKey implements storage.Keys as a compare-and-swap on the newest
// unretired key (by CreatedAt, then ID). ErrAlreadyExists when key.ID is
// taken.
func (s *Store) AddSigningKey(ctx context.Context, key storage.SigningKey, expectActive string, publishUntil time.Time) error {
	if key.ID == "" {
		return errors.New("bboltstore: signing key without id")
	}
	if key.CreatedAt.IsZero() {
		return errors.New("bboltstore: signing key without creation time")
	}
	if key.Activation().Before(key.CreatedAt) {
		return errors.New("bboltstore: signing key activated before its creation")
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktKeys)
		if b.Get([]byte(key.ID)) != nil {
			return fmt.Errorf("bboltstore: signing key: %w", storage.ErrAlreadyExists)
		}
		keys, err := allKeys(tx)
		if err != nil {
			return err
		}
		active := ""
		for _, k := range keys {
			if k.RetiredAt.IsZero() {
				active = k.ID // keys are sorted oldest first: the last one wins
			}
		}
		if active != expectActive {
			return fmt.Errorf("bboltstore: active signing key is %q, not %q: %w", active, expectActive, storage.ErrConflict)
		}
		for _, k := range keys {
			if !k.RetiredAt.IsZero() {
				continue
			}
			k.RetiredAt = key.Activation()
			k.PublishUntil = publishUntil
			if err := putJSON(b, []byte(k.ID), k); err != nil {
				return err
			}
		}
		return putJSON(b, []byte(key.ID), key)
	})
}

// DeleteSigningKey implements storage.Keys. ErrNotFound for an unknown kid,
// ErrConflict for a key that is not retired.
func (s *Store) DeleteSigningKey(ctx context.Context, kid string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktKeys)
		var k storage.SigningKey
		if err := getJSON(b, []byte(kid), &k); err != nil {
			return err
		}
		if k.RetiredAt.IsZero() {
			return fmt.Errorf("bboltstore: signing key %q is not retired: %w", kid, storage.ErrConflict)
		}
		return b.Delete([]byte(kid))
	})
}

// RewrapSigningKey implements storage.Keys.
func (s *Store) RewrapSigningKey(ctx context.Context, kid string, expect, replacement []byte) error {
	if len(replacement) == 0 {
		return errors.New("bboltstore: rewrap signing key: empty replacement")
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktKeys)
		var k storage.SigningKey
		if err := getJSON(b, []byte(kid), &k); err != nil {
			return err
		}
		if !bytes.Equal(k.PrivateJWK, expect) {
			return fmt.Errorf("bboltstore: signing key %q changed: %w", kid, storage.ErrConflict)
		}
		k.PrivateJWK = replacement
		return putJSON(b, []byte(kid), k)
	})
}
