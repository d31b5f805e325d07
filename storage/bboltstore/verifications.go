package bboltstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// SaveEmailVerification implements storage.EmailVerifications.
func (s *Store) SaveEmailVerification(ctx context.Context, v storage.EmailVerification) error {
	if err := checkHash("email verification", v.Hash); err != nil {
		return err
	}
	if v.AccountID == "" || v.ExpiresAt.IsZero() {
		return errors.New("bboltstore: email verification without account or expiry")
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktVerifications)
		if b.Get(v.Hash) != nil {
			return fmt.Errorf("bboltstore: email verification: %w", storage.ErrAlreadyExists)
		}
		if err := putJSON(b, v.Hash, v); err != nil {
			return err
		}
		return bucket(tx, bktVerificationsByAcct).Put(lp(v.AccountID, v.Hash), nil)
	})
}

// GetEmailVerification implements storage.EmailVerifications.
func (s *Store) GetEmailVerification(ctx context.Context, hash []byte, now time.Time) (storage.EmailVerification, error) {
	var v storage.EmailVerification
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if err := getJSON(bucket(tx, bktVerifications), hash, &v); err != nil {
			return err
		}
		if expired(v.ExpiresAt, now) {
			return storage.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return storage.EmailVerification{}, err
	}
	v.Hash = clone(hash)
	return v, nil
}

// ConsumeEmailVerification implements storage.EmailVerifications in one
// write transaction.
func (s *Store) ConsumeEmailVerification(ctx context.Context, hash []byte, now time.Time) (storage.EmailVerification, error) {
	var v storage.EmailVerification
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktVerifications)
		if err := getJSON(b, hash, &v); err != nil {
			return err
		}
		if expired(v.ExpiresAt, now) {
			return storage.ErrNotFound
		}
		idx := bucket(tx, bktVerificationsByAcct)
		var mine [][]byte
		if err := forPrefix(idx, lp(v.AccountID), func(h, _ []byte) error {
			mine = append(mine, clone(h))
			return nil
		}); err != nil {
			return err
		}
		for _, h := range mine {
			if err := deleteVerification(tx, h, v.AccountID); err != nil {
				return err
			}
		}
		return deleteVerification(tx, hash, v.AccountID)
	})
	if err != nil {
		return storage.EmailVerification{}, err
	}
	v.Hash = clone(hash)
	return v, nil
}

func deleteVerification(tx *bolt.Tx, hash []byte, accountID string) error {
	if err := bucket(tx, bktVerificationsByAcct).Delete(lp(accountID, hash)); err != nil {
		return err
	}
	return bucket(tx, bktVerifications).Delete(hash)
}
