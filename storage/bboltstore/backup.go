package bboltstore

import (
	"context"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole database file to w from one
// read transaction, while writers carry on. The copy is an ordinary store
// file: Open it to restore. It contains signing keys and password hashes;
// keep it as private as the original (mode 0600).
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("bboltstore: backup: %w", err)
	}
	return n, nil
}
