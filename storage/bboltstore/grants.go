package bboltstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// createGrant validates everything before writing, so a refusal leaves tx
// untouched.
func createGrant(tx *bolt.Tx, g storage.Grant) error {
	if g.ID == "" {
		return errors.New("bboltstore: grant without id")
	}
	for what, v := range map[string]string{"grant id": g.ID, "client id": g.ClientID, "subject": g.Subject} {
		if err := checkComposite(what, v); err != nil {
			return err
		}
	}
	grants := bucket(tx, bktGrants)
	idx := bucket(tx, bktRefreshIndex)
	if grants.Get([]byte(g.ID)) != nil {
		return fmt.Errorf("bboltstore: grant: %w", storage.ErrAlreadyExists)
	}
	var hashes [][]byte
	for _, h := range [][]byte{g.RefreshHash, g.PreviousHash} {
		if h == nil {
			continue
		}
		if err := checkHash("refresh token", h); err != nil {
			return err
		}
		if idx.Get(h) != nil {
			return fmt.Errorf("bboltstore: refresh token: %w", storage.ErrAlreadyExists)
		}
		hashes = append(hashes, h)
	}
	if err := putJSON(grants, []byte(g.ID), g); err != nil {
		return err
	}
	for _, h := range hashes {
		if err := indexRefresh(tx, g.ID, h); err != nil {
			return err
		}
	}
	if err := bucket(tx, bktGrantsByClient).Put(lp(g.ClientID, []byte(g.ID)), nil); err != nil {
		return err
	}
	return bucket(tx, bktGrantsBySubject).Put(lp(g.Subject, []byte(g.ID)), nil)
}

func indexRefresh(tx *bolt.Tx, grantID string, h []byte) error {
	if err := bucket(tx, bktRefreshIndex).Put(h, []byte(grantID)); err != nil {
		return err
	}
	return bucket(tx, bktRefreshByGrant).Put(lp(grantID, h), nil)
}

// deleteGrant removes a grant and every index entry pointing at it.
func deleteGrant(tx *bolt.Tx, g storage.Grant) error {
	idx := bucket(tx, bktRefreshIndex)
	byGrant := bucket(tx, bktRefreshByGrant)
	prefix := lp(g.ID)
	var keys [][]byte
	if err := forPrefix(byGrant, prefix, func(h, _ []byte) error {
		keys = append(keys, clone(h))
		return nil
	}); err != nil {
		return err
	}
	for _, h := range keys {
		if err := idx.Delete(h); err != nil {
			return err
		}
		if err := byGrant.Delete(lp(g.ID, h)); err != nil {
			return err
		}
	}
	if err := bucket(tx, bktGrantsByClient).Delete(lp(g.ClientID, []byte(g.ID))); err != nil {
		return err
	}
	if err := bucket(tx, bktGrantsBySubject).Delete(lp(g.Subject, []byte(g.ID))); err != nil {
		return err
	}
	return bucket(tx, bktGrants).Delete([]byte(g.ID))
}

// CreateGrant implements storage.Grants. ErrAlreadyExists when the id or a
// refresh token hash is taken.
func (s *Store) CreateGrant(ctx context.Context, g storage.Grant) error {
	return s.update(ctx, func(tx *bolt.Tx) error { return createGrant(tx, g) })
}

// GetGrant implements storage.Grants. Revoked and expired grants are
// returned as stored; the caller checks them.
func (s *Store) GetGrant(ctx context.Context, id string) (storage.Grant, error) {
	var g storage.Grant
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return getJSON(bucket(tx, bktGrants), []byte(id), &g)
	})
	if err != nil {
		return storage.Grant{}, err
	}
	return g, nil
}

// GrantByRefresh implements storage.Grants.
func (s *Store) GrantByRefresh(ctx context.Context, hash []byte) (storage.Grant, error) {
	var g storage.Grant
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := bucket(tx, bktRefreshIndex).Get(hash)
		if id == nil {
			return storage.ErrNotFound
		}
		return getJSON(bucket(tx, bktGrants), id, &g)
	})
	if err != nil {
		return storage.Grant{}, err
	}
	return g, nil
}

// RotateRefresh implements storage.Grants in one write transaction.
//
// An unknown token is ErrNotFound; otherwise storage.RotateGrant decides
// (the rule every backend shares: current token, one lost-response retry of
// the previous token within r.Grace, reuse revokes the family) and the
// transaction writes what it returns.
func (s *Store) RotateRefresh(ctx context.Context, r storage.Rotation) (storage.Grant, error) {
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	if err := checkHash("next refresh token", r.Next); err != nil {
		return storage.Grant{}, err
	}
	if r.Now.IsZero() {
		return storage.Grant{}, errors.New("bboltstore: rotation without time")
	}
	var (
		g      storage.Grant
		reused bool
	)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		idx := bucket(tx, bktRefreshIndex)
		grants := bucket(tx, bktGrants)
		id := idx.Get(r.Presented)
		if id == nil {
			return storage.ErrNotFound
		}
		id = clone(id)
		if err := getJSON(grants, id, &g); err != nil {
			return err
		}
		next, err := storage.RotateGrant(g, r)
		switch {
		case errors.Is(err, storage.ErrRefreshReused):
			g, reused = next, true
			if err := putJSON(grants, id, g); err != nil {
				return err
			}
			return s.txAudit(ctx, tx, storage.ErrRefreshReused, &g)
		case err != nil:
			return err
		}
		if idx.Get(r.Next) != nil {
			return fmt.Errorf("bboltstore: next refresh token: %w", storage.ErrAlreadyExists)
		}
		g = next
		if err := putJSON(grants, id, g); err != nil {
			return err
		}
		if err := indexRefresh(tx, g.ID, r.Next); err != nil {
			return err
		}
		return s.txAudit(ctx, tx, nil, &g)
	})
	switch {
	case err == nil && reused:
		return g, storage.ErrRefreshReused
	case err == nil:
		return g, nil
	case errors.Is(err, storage.ErrNotFound):
		return storage.Grant{}, err
	default:
		return g, err
	}
}

// RevokeGrant implements storage.Grants. Revoking a revoked grant keeps the
// first revocation and succeeds.
func (s *Store) RevokeGrant(ctx context.Context, id, reason string, now time.Time) error {
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	now = s.revocationTime(now)
	return s.update(ctx, func(tx *bolt.Tx) error {
		changed, err := revoke(tx, []byte(id), reason, now)
		if err != nil || !changed {
			return err
		}
		return s.txAudit(ctx, tx, nil, nil)
	})
}

// revocationTime never lets a zero time through: a zero RevokedAt would
// read as "not revoked".
func (s *Store) revocationTime(now time.Time) time.Time {
	if now.IsZero() {
		return s.now()
	}
	return now
}

// revoke marks one grant revoked; it reports whether it changed anything.
func revoke(tx *bolt.Tx, id []byte, reason string, now time.Time) (bool, error) {
	b := bucket(tx, bktGrants)
	var g storage.Grant
	if err := getJSON(b, id, &g); err != nil {
		return false, err
	}
	if g.Revoked() {
		return false, nil
	}
	g.RevokedAt = now
	g.RevokedReason = reason
	return true, putJSON(b, id, g)
}

// RevokeClientGrants implements storage.Grants; it counts the grants it
// revoked (not those revoked before).
func (s *Store) RevokeClientGrants(ctx context.Context, clientID, reason string, now time.Time) (int, error) {
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	return s.revokeIndexed(ctx, bktGrantsByClient, clientID, reason, now)
}

// RevokeSubjectGrants implements storage.Grants; it counts the grants it
// revoked (not those revoked before).
func (s *Store) RevokeSubjectGrants(ctx context.Context, subject, reason string, now time.Time) (int, error) {
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	return s.revokeIndexed(ctx, bktGrantsBySubject, subject, reason, now)
}

func (s *Store) revokeIndexed(ctx context.Context, index []byte, key, reason string, now time.Time) (int, error) {
	now = s.revocationTime(now)
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		ids, err := indexed(bucket(tx, index), key)
		if err != nil {
			return err
		}
		for _, id := range ids {
			changed, err := revoke(tx, id, reason, now)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if changed {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// indexed returns the suffixes under lp(key) in an index bucket.
func indexed(b *bolt.Bucket, key string) ([][]byte, error) {
	var ids [][]byte
	if len(key) > maxComposite {
		return nil, nil // never written
	}
	err := forPrefix(b, lp(key), func(id, _ []byte) error {
		ids = append(ids, clone(id))
		return nil
	})
	return ids, err
}

// ListGrants implements storage.Grants: the grants of a client, of a
// subject, of both (clientID and subject set) or all of them (neither),
// revoked ones included, ordered by CreatedAt then ID.
func (s *Store) ListGrants(ctx context.Context, clientID, subject string) ([]storage.Grant, error) {
	var out []storage.Grant
	err := s.view(ctx, func(tx *bolt.Tx) error {
		grants := bucket(tx, bktGrants)
		keep := func(g storage.Grant) bool {
			return (clientID == "" || g.ClientID == clientID) && (subject == "" || g.Subject == subject)
		}
		var ids [][]byte
		var err error
		switch {
		case clientID != "":
			ids, err = indexed(bucket(tx, bktGrantsByClient), clientID)
		case subject != "":
			ids, err = indexed(bucket(tx, bktGrantsBySubject), subject)
		default:
			return grants.ForEach(func(_, v []byte) error {
				var g storage.Grant
				if err := decode(v, &g); err != nil {
					return err
				}
				out = append(out, g)
				return nil
			})
		}
		if err != nil {
			return err
		}
		for _, id := range ids {
			var g storage.Grant
			if err := getJSON(grants, id, &g); errors.Is(err, storage.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if keep(g) {
				out = append(out, g)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b storage.Grant) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}
