package pgstore

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// SaveCode stores an authorization code under its hash.
func (s *Store) SaveCode(ctx context.Context, c storage.AuthCode) error {
	if err := checkHash("code", c.Hash); err != nil {
		return err
	}
	if c.ExpiresAt.IsZero() {
		return errors.New("pgstore: save code: code without expiry")
	}
	c.UsedAt = time.Time{}
	data, err := encode("save code", c)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO mcpauth_codes (hash, client_id, grant_id, expires_at, used_at, data)
VALUES ($1, $2, $3, $4, NULL, $5)`, c.Hash, c.ClientID, c.GrantID, ts(c.ExpiresAt), data)
	return dbErr("save code", err)
}

// RedeemCode marks the code used and lets issue turn it into a grant, in
// one transaction that holds the code's row lock: of any number of
// concurrent redemptions, across any number of instances, exactly one calls
// issue. A code used before returns its record and ErrCodeUsed; unknown or
// expired codes ErrNotFound. A used code is reported with ErrCodeUsed even
// after its expiry, as long as the record is kept (until DeleteExpired), so a
// replay can still revoke what the first redemption produced. When issue
// fails the code stays burned and nothing else is written; when the grant it
// returns cannot be stored (a savepoint is rolled back) the code stays burned
// too and the error is returned with the code. issue runs inside the
// transaction, holding the row lock: it must be quick, must not call the
// store, and may run again if the transaction is retried.
func (s *Store) RedeemCode(ctx context.Context, hash []byte, now time.Time, issue func(storage.AuthCode) (*storage.Grant, error)) (storage.AuthCode, error) {
	var (
		out  storage.AuthCode
		keep bool // the error comes with the code record
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out, keep = storage.AuthCode{}, false
		// Happy path in one statement: the row lock is taken by the
		// UPDATE; a concurrent redeemer waits for it, then finds used_at
		// set and falls through to the SELECT below.
		var data []byte
		err := tx.QueryRow(ctx, `UPDATE mcpauth_codes SET used_at = $2,
	data = data || jsonb_build_object('used_at', $3::text)
WHERE hash = $1 AND used_at IS NULL RETURNING data`, hash, ts(now), jsonTime(now)).Scan(&data)
		fresh := err == nil
		if errors.Is(err, pgx.ErrNoRows) {
			err = tx.QueryRow(ctx, `SELECT data FROM mcpauth_codes WHERE hash = $1`, hash).Scan(&data)
		}
		if err != nil {
			return dbErr("redeem code", err)
		}
		var c storage.AuthCode
		if err := decode("redeem code", data, &c); err != nil {
			return err
		}
		c.Hash = append([]byte(nil), hash...)
		if !fresh {
			out, keep = c, true
			return fmt.Errorf("pgstore: redeem code: %w", storage.ErrCodeUsed)
		}
		if expired(c.ExpiresAt, now) {
			return notFound("redeem code") // rolls the UPDATE back
		}
		out = c
		g, err := issue(c)
		if err != nil {
			keep = true
			return errCommit{err} // the code stays burned
		}
		if g == nil {
			return nil
		}
		if gerr := validGrant(*g); gerr != nil {
			keep = true
			return errCommit{gerr} // the code stays burned
		}
		if gerr := createGrant(ctx, tx, *g, true); gerr != nil {
			if retryable(gerr) {
				return gerr
			}
			if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT mcpauth_grant`); err != nil {
				return dbErr("redeem code", err)
			}
			keep = true
			return errCommit{gerr} // the code stays burned, the grant is undone
		}
		return s.txAudit(ctx, tx, nil, g)
	})
	if err != nil && keep {
		return out, err
	}
	if err != nil {
		return storage.AuthCode{}, err
	}
	return out, nil
}

// CreateGrant stores a new grant and registers its refresh token hashes.
func (s *Store) CreateGrant(ctx context.Context, g storage.Grant) error {
	return s.inTx(ctx, func(tx pgx.Tx) error { return createGrant(ctx, tx, g, false) })
}

// validGrant refuses a grant without id or with refresh hashes that are not
// SHA-256 digests.
func validGrant(g storage.Grant) error {
	if g.ID == "" {
		return errors.New("pgstore: create grant: empty id")
	}
	for _, h := range [][]byte{g.RefreshHash, g.PreviousHash} {
		if h == nil {
			continue
		}
		if err := checkHash("refresh token", h); err != nil {
			return err
		}
	}
	return nil
}

// createGrant validates g, then writes it and its refresh token hashes in
// one round trip. With savepoint, the writes are wrapped in SAVEPOINT
// mcpauth_grant (released on success) so that the caller can roll them back
// alone after a failure.
func createGrant(ctx context.Context, tx pgx.Tx, g storage.Grant, savepoint bool) error {
	if err := validGrant(g); err != nil {
		return err
	}
	hashes := make([][]byte, 0, 2)
	for _, h := range [][]byte{g.RefreshHash, g.PreviousHash} {
		if h == nil || (len(hashes) == 1 && subtle.ConstantTimeCompare(hashes[0], h) == 1) {
			continue
		}
		hashes = append(hashes, h)
	}
	data, err := encode("create grant", g)
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	if savepoint {
		b.Queue(`SAVEPOINT mcpauth_grant`)
	}
	b.Queue(`INSERT INTO mcpauth_grants (id, client_id, subject, created_at, expires_at, revoked_at, data)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, g.ID, g.ClientID, g.Subject, ts(g.CreatedAt), ts(g.ExpiresAt), ts(g.RevokedAt), data)
	for _, h := range hashes {
		b.Queue(`INSERT INTO mcpauth_refresh_tokens (hash, grant_id) VALUES ($1, $2)`, h, g.ID)
	}
	if savepoint {
		b.Queue(`RELEASE SAVEPOINT mcpauth_grant`)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return dbErr("create grant", err)
	}
	return nil
}

// GetGrant returns the grant with that id (revoked grants included).
func (s *Store) GetGrant(ctx context.Context, id string) (storage.Grant, error) {
	var data []byte
	if err := s.pool.QueryRow(ctx, `SELECT data FROM mcpauth_grants WHERE id = $1`, id).Scan(&data); err != nil {
		return storage.Grant{}, dbErr("get grant", err)
	}
	var g storage.Grant
	return g, decode("get grant", data, &g)
}

// RotateRefresh swaps the grant's refresh token as a compare-and-swap under
// the grant's row lock (SELECT ... FOR UPDATE), so concurrent rotations on
// any number of instances are serialized.
//
// An unknown token is ErrNotFound; otherwise storage.RotateGrant decides
// (the rule every backend shares: current token, one lost-response retry of
// the previous token within r.Grace, reuse revokes the family in the same
// transaction) and the transaction writes what it returns. Check may run
// again if the transaction is retried.
func (s *Store) RotateRefresh(ctx context.Context, r storage.Rotation) (storage.Grant, error) {
	const op = "rotate refresh"
	if err := checkHash("next refresh token", r.Next); err != nil {
		return storage.Grant{}, err
	}
	if r.Now.IsZero() {
		return storage.Grant{}, errors.New("pgstore: rotate refresh: rotation without time")
	}
	var g storage.Grant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		g = storage.Grant{}
		var data []byte
		err := tx.QueryRow(ctx, `SELECT g.data FROM mcpauth_refresh_tokens t
JOIN mcpauth_grants g ON g.id = t.grant_id
WHERE t.hash = $1 FOR UPDATE OF g`, r.Presented).Scan(&data)
		if err != nil {
			return dbErr(op, err)
		}
		if err := decode(op, data, &g); err != nil {
			return err
		}
		next, err := storage.RotateGrant(g, r)
		switch {
		case errors.Is(err, storage.ErrRefreshReused):
			// Reuse of a retired token of the family: end the family now.
			g = next
			if err := updateGrant(ctx, tx, op, g); err != nil {
				return err
			}
			if err := s.txAudit(ctx, tx, storage.ErrRefreshReused, &g); err != nil {
				return err
			}
			return errCommit{fmt.Errorf("pgstore: %s: %w", op, err)}
		case errors.Is(err, storage.ErrGrantRevoked):
			return fmt.Errorf("pgstore: %s: %w", op, err)
		case errors.Is(err, storage.ErrNotFound):
			return notFound(op)
		case err != nil:
			return err // r.Check's, as is
		}
		g = next
		if err := updateGrant(ctx, tx, op, g); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mcpauth_refresh_tokens (hash, grant_id) VALUES ($1, $2)`, r.Next, g.ID); err != nil {
			return dbErr(op+": next refresh token", err)
		}
		return s.txAudit(ctx, tx, nil, &g)
	})
	switch {
	case err == nil:
		return g, nil
	case errors.Is(err, storage.ErrNotFound):
		return storage.Grant{}, err
	default:
		return g, err
	}
}

func updateGrant(ctx context.Context, tx pgx.Tx, op string, g storage.Grant) error {
	data, err := encode(op, g)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE mcpauth_grants SET revoked_at = $2, expires_at = $3, data = $4 WHERE id = $1`,
		g.ID, ts(g.RevokedAt), ts(g.ExpiresAt), data)
	return dbErr(op, err)
}

// GrantByRefresh finds the grant any refresh token of its family belongs
// to, without changing anything.
func (s *Store) GrantByRefresh(ctx context.Context, hash []byte) (storage.Grant, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT g.data FROM mcpauth_refresh_tokens t
JOIN mcpauth_grants g ON g.id = t.grant_id WHERE t.hash = $1`, hash).Scan(&data)
	if err != nil {
		return storage.Grant{}, dbErr("grant by refresh", err)
	}
	var g storage.Grant
	return g, decode("grant by refresh", data, &g)
}

// revocationTime never lets a zero time through: a zero RevokedAt would
// read as "not revoked".
func (s *Store) revocationTime(now time.Time) time.Time {
	if now.IsZero() {
		return s.now()
	}
	return now
}

const revokeSet = `UPDATE mcpauth_grants SET revoked_at = $2,
	data = data || jsonb_build_object('revoked_at', $3::text, 'revoked_reason', $4::text)
WHERE revoked_at IS NULL AND `

// RevokeGrant revokes one grant; ErrNotFound for unknown ids. Revoking a
// revoked grant keeps its first revocation.
func (s *Store) RevokeGrant(ctx context.Context, id, reason string, now time.Time) error {
	now = s.revocationTime(now)
	n, err := s.execAudited(ctx, "revoke grant", revokeSet+`id = $1`, id, ts(now), jsonTime(now), reason)
	if err != nil {
		return err
	}
	if n == 0 {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mcpauth_grants WHERE id = $1)`, id).Scan(&exists); err != nil {
			return dbErr("revoke grant", err)
		}
		if !exists {
			return notFound("revoke grant")
		}
	}
	return nil
}

// RevokeClientGrants revokes every live grant of a client and returns how
// many it revoked.
func (s *Store) RevokeClientGrants(ctx context.Context, clientID, reason string, now time.Time) (int, error) {
	now = s.revocationTime(now)
	tag, err := s.pool.Exec(ctx, revokeSet+`client_id = $1`, clientID, ts(now), jsonTime(now), reason)
	if err != nil {
		return 0, dbErr("revoke client grants", err)
	}
	return int(tag.RowsAffected()), nil
}

// RevokeSubjectGrants revokes every live grant of a subject and returns how
// many it revoked.
func (s *Store) RevokeSubjectGrants(ctx context.Context, subject, reason string, now time.Time) (int, error) {
	now = s.revocationTime(now)
	tag, err := s.pool.Exec(ctx, revokeSet+`subject = $1`, subject, ts(now), jsonTime(now), reason)
	if err != nil {
		return 0, dbErr("revoke subject grants", err)
	}
	return int(tag.RowsAffected()), nil
}

// ListGrants returns the grants of a client and/or a subject (an empty
// filter matches all), oldest first.
func (s *Store) ListGrants(ctx context.Context, clientID, subject string) ([]storage.Grant, error) {
	rows, err := s.pool.Query(ctx, `SELECT data FROM mcpauth_grants
WHERE ($1 = '' OR client_id = $1) AND ($2 = '' OR subject = $2)
ORDER BY created_at NULLS FIRST, id COLLATE "C"`, clientID, subject)
	if err != nil {
		return nil, dbErr("list grants", err)
	}
	return collect(rows, "list grants", func(data []byte) (storage.Grant, error) {
		var g storage.Grant
		return g, decode("list grants", data, &g)
	})
}
