package bboltstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// SaveCode implements storage.Codes. The code is stored under c.Hash (a
// SHA-256); ErrAlreadyExists when that hash is taken.
func (s *Store) SaveCode(ctx context.Context, c storage.AuthCode) error {
	if err := checkHash("code", c.Hash); err != nil {
		return err
	}
	if c.ExpiresAt.IsZero() {
		return errors.New("bboltstore: code without expiry")
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktCodes)
		if b.Get(c.Hash) != nil {
			return fmt.Errorf("bboltstore: code: %w", storage.ErrAlreadyExists)
		}
		c.UsedAt = time.Time{}
		return putJSON(b, c.Hash, c)
	})
}

// RedeemCode implements storage.Codes in one write transaction, batched with
// concurrent redemptions (db.Batch) so they share a commit. issue may
// therefore run more than once; the values of its last run are the ones
// committed.
//
// A code used before is reported with ErrCodeUsed even after its expiry, as
// long as the record is kept (until DeleteExpired), so a replay can still
// revoke what the first redemption produced. issue runs inside the write
// transaction: it must be quick and must not call the store.
func (s *Store) RedeemCode(ctx context.Context, hash []byte, now time.Time, issue func(storage.AuthCode) (*storage.Grant, error)) (storage.AuthCode, error) {
	var (
		code     storage.AuthCode
		issueErr error // committed with the burned code, returned afterwards
		grantErr error // rolled back; the code is burned in a second transaction
	)
	// Expected refusals are reported through outcome with a nil return, so
	// that they do not abort the batch and make the other calls run again.
	var outcome error
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		code, issueErr, grantErr, outcome = storage.AuthCode{}, nil, nil, nil
		b := bucket(tx, bktCodes)
		if err := getJSON(b, hash, &code); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				outcome = err
				return nil
			}
			return err
		}
		code.Hash = clone(hash)
		if !code.UsedAt.IsZero() {
			outcome = storage.ErrCodeUsed
			return nil
		}
		if expired(code.ExpiresAt, now) {
			outcome = storage.ErrNotFound
			return nil
		}
		code.UsedAt = now
		if err := putJSON(b, hash, code); err != nil {
			return err
		}
		g, err := issue(code)
		if err != nil {
			issueErr = err
			return nil // commit the burned code, nothing else
		}
		if g == nil {
			return nil
		}
		if err := createGrant(tx, *g); err != nil {
			grantErr = err
			return err // roll back whatever createGrant wrote
		}
		return s.txAudit(ctx, tx, nil, g)
	})
	if err == nil && outcome != nil {
		err = outcome
	}
	if grantErr != nil {
		// The code was presented once and must not be redeemable again,
		// even though its grant could not be written.
		if berr := s.burnCode(hash, now); berr != nil {
			s.log.Error("bboltstore: could not burn a code after a failed redemption", "error", berr)
		}
		return code, grantErr
	}
	switch {
	case err == nil && issueErr != nil:
		return code, issueErr
	case err == nil:
		return code, nil
	case errors.Is(err, storage.ErrCodeUsed):
		return code, err
	default:
		return storage.AuthCode{}, err
	}
}

// burnCode marks an unused code used.
func (s *Store) burnCode(hash []byte, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := bucket(tx, bktCodes)
		var c storage.AuthCode
		if err := getJSON(b, hash, &c); err != nil {
			return err
		}
		if !c.UsedAt.IsZero() {
			return nil
		}
		c.UsedAt = now
		return putJSON(b, hash, c)
	})
}
