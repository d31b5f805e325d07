package bboltstore

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A migration moves the file from schema version i to i+1 (i is its index
// in migrations). Each runs in its own write transaction, which also records
// the new version, so a crash leaves the file at a consistent version.
type migration struct {
	name  string
	apply func(tx *bolt.Tx) error
}

// migrations is append-only: never edit or reorder a released entry.
var migrations = []migration{
	{name: "create v1 buckets", apply: func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bktV1)
		if err != nil {
			return err
		}
		for _, name := range schema1Buckets {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("v1/%s: %w", name, err)
			}
		}
		return nil
	}},
	{name: "create v1 email verification buckets", apply: func(tx *bolt.Tx) error {
		root := tx.Bucket(bktV1)
		if root == nil {
			return fmt.Errorf("v1 bucket missing")
		}
		for _, name := range [][]byte{bktVerifications, bktVerificationsByAcct} {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("v1/%s: %w", name, err)
			}
		}
		return nil
	}},
	{name: "create v1 replays bucket", apply: func(tx *bolt.Tx) error {
		root := tx.Bucket(bktV1)
		if root == nil {
			return fmt.Errorf("v1 bucket missing")
		}
		if _, err := root.CreateBucketIfNotExists(bktReplays); err != nil {
			return fmt.Errorf("v1/%s: %w", bktReplays, err)
		}
		return nil
	}},
}

// latestVersion is the schema version this build writes.
func latestVersion() uint64 { return uint64(len(migrations)) }

// schemaVersion reads meta/schema_version; 0 for a new file.
func schemaVersion(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bktMeta)
	if meta == nil {
		return 0, nil
	}
	raw := meta.Get(keySchemaVersion)
	if raw == nil {
		return 0, nil
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("bboltstore: malformed schema version (%d bytes)", len(raw))
	}
	return binary.BigEndian.Uint64(raw), nil
}

func setSchemaVersion(tx *bolt.Tx, v uint64) error {
	meta, err := tx.CreateBucketIfNotExists(bktMeta)
	if err != nil {
		return err
	}
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], v)
	return meta.Put(keySchemaVersion, raw[:])
}

// migrate applies the pending migrations in order.
func (s *Store) migrate() error {
	for {
		var done bool
		err := s.db.Update(func(tx *bolt.Tx) error {
			v, err := schemaVersion(tx)
			if err != nil {
				return err
			}
			if v > latestVersion() {
				return fmt.Errorf("bboltstore: database schema version %d is newer than this build supports (%d)", v, latestVersion())
			}
			if v == latestVersion() {
				done = true
				return nil
			}
			m := migrations[v]
			if err := m.apply(tx); err != nil {
				return fmt.Errorf("bboltstore: migration %d (%s): %w", v+1, m.name, err)
			}
			if err := setSchemaVersion(tx, v+1); err != nil {
				return fmt.Errorf("bboltstore: record schema version %d: %w", v+1, err)
			}
			s.log.Info("bboltstore: schema migrated", "version", v+1, "migration", m.name)
			return nil
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}
