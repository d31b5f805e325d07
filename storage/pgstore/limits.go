package pgstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
)

var _ abuse.SharedBuckets = (*Store)(nil)

// maxSharedTakes bounds one TakeShared statement.
const maxSharedTakes = 10_000

// TakeShared implements abuse.SharedBuckets in one statement: an upsert
// per bucket that moves its end to max(end, now) + n·interval and returns
// it. A bucket is a row keyed by the SHA-256 of its key (no address is
// stored in the clear); a row whose end has passed is a full bucket, which
// DeleteExpired removes. Keys must be distinct (callers send one take per
// bucket).
func (s *Store) TakeShared(ctx context.Context, now time.Time, takes []abuse.SharedTake) ([]time.Time, error) {
	if len(takes) == 0 {
		return nil, nil
	}
	if len(takes) > maxSharedTakes {
		return nil, errors.New("pgstore: take shared: too many buckets in one call")
	}
	hashes := make([][]byte, len(takes))
	debts := make([]int64, len(takes))
	index := make(map[[sha256.Size]byte]int, len(takes))
	for i, t := range takes {
		if t.N < 0 || t.Interval < 0 {
			return nil, errors.New("pgstore: take shared: negative take")
		}
		h := sha256.Sum256([]byte(t.Key))
		if _, dup := index[h]; dup {
			return nil, errors.New("pgstore: take shared: duplicate bucket")
		}
		index[h] = i
		hashes[i] = h[:]
		debts[i] = int64(t.N) * int64(t.Interval)
	}
	// EXCLUDED.end_ns − $1 is the debt taken (the inserted row's end is
	// now + debt). Rows are locked in the order of the hashes so two
	// instances' batches cannot deadlock.
	rows, err := s.pool.Query(ctx, `INSERT INTO mcpauth_limits AS l (hash, end_ns)
SELECT h, $1::bigint + d FROM unnest($2::bytea[], $3::bigint[]) AS t(h, d) ORDER BY h
ON CONFLICT (hash) DO UPDATE SET end_ns = greatest(l.end_ns, $1::bigint) + (EXCLUDED.end_ns - $1::bigint)
RETURNING hash, end_ns`, now.UnixNano(), hashes, debts)
	if err != nil {
		return nil, dbErr("take shared", err)
	}
	defer rows.Close()
	ends := make([]time.Time, len(takes))
	seen := 0
	for rows.Next() {
		var h []byte
		var end int64
		if err := rows.Scan(&h, &end); err != nil {
			return nil, dbErr("take shared", err)
		}
		if len(h) != sha256.Size {
			return nil, errors.New("pgstore: take shared: unexpected row")
		}
		i, ok := index[[sha256.Size]byte(h)]
		if !ok {
			return nil, errors.New("pgstore: take shared: unexpected row")
		}
		ends[i] = time.Unix(0, end)
		seen++
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("take shared", err)
	}
	if seen != len(takes) {
		return nil, errors.New("pgstore: take shared: short reply")
	}
	return ends, nil
}
