package bboltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcpauth.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func storedVersion(t *testing.T, s *Store) uint64 {
	t.Helper()
	var v uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = schemaVersion(tx)
		return err
	}); err != nil {
		t.Fatalf("schemaVersion: %v", err)
	}
	return v
}

func checkBuckets(t *testing.T, s *Store) {
	t.Helper()
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range v1Buckets {
			bucket(tx, name) // panics when missing
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// rawFile writes a bbolt file by hand, as an older build or another tool
// would have left it.
func rawFile(t *testing.T, fn func(tx *bolt.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSchemaVersions(t *testing.T) {
	t.Run("NewFile", func(t *testing.T) {
		s, _ := openTemp(t)
		if v := storedVersion(t, s); v != latestVersion() {
			t.Fatalf("version = %d, want %d", v, latestVersion())
		}
		checkBuckets(t, s)
	})
	t.Run("EmptyFileAtVersion0", func(t *testing.T) {
		path := rawFile(t, func(*bolt.Tx) error { return nil })
		s, err := Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if v := storedVersion(t, s); v != latestVersion() {
			t.Fatalf("version = %d, want %d", v, latestVersion())
		}
		checkBuckets(t, s)
	})
	t.Run("ExplicitVersion0", func(t *testing.T) {
		path := rawFile(t, func(tx *bolt.Tx) error { return setSchemaVersion(tx, 0) })
		s, err := Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if v := storedVersion(t, s); v != latestVersion() {
			t.Fatalf("version = %d, want %d", v, latestVersion())
		}
		checkBuckets(t, s)
	})
	t.Run("CurrentVersionKeepsData", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "mcpauth.db")
		s, err := Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		c := storage.Client{ID: "client-1", Name: "Kept", CreatedAt: time.Unix(1700000000, 0).UTC()}
		if err := s.CreateClient(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s.Close()
		if v := storedVersion(t, s); v != latestVersion() {
			t.Fatalf("version = %d, want %d", v, latestVersion())
		}
		got, err := s.GetClient(t.Context(), "client-1")
		if err != nil || got.Name != "Kept" || !got.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("client after reopen: %+v, %v", got, err)
		}
	})
	t.Run("NewerVersionRefused", func(t *testing.T) {
		path := rawFile(t, func(tx *bolt.Tx) error { return setSchemaVersion(tx, latestVersion()+1) })
		s, err := Open(path, Options{NoSync: true})
		if err == nil {
			s.Close()
			t.Fatal("Open accepted a file from a newer build")
		}
		// The refusal released the file and changed nothing.
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
		if err != nil {
			t.Fatalf("file still locked after a refused Open: %v", err)
		}
		defer db.Close()
		_ = db.View(func(tx *bolt.Tx) error {
			if v, _ := schemaVersion(tx); v != latestVersion()+1 {
				t.Errorf("version changed to %d", v)
			}
			if tx.Bucket(bktV1) != nil {
				t.Error("refused Open created buckets")
			}
			return nil
		})
	})
	t.Run("MalformedVersionRefused", func(t *testing.T) {
		path := rawFile(t, func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bktMeta)
			if err != nil {
				return err
			}
			return b.Put(keySchemaVersion, []byte{1})
		})
		if s, err := Open(path, Options{NoSync: true}); err == nil {
			s.Close()
			t.Fatal("Open accepted a malformed schema version")
		}
	})
}

// TestMigrationsOrdered runs a file through extra test migrations: each
// applies once, in order, in its own transaction with its version; a
// failing one leaves the file at the version before it.
func TestMigrationsOrdered(t *testing.T) {
	orig := migrations
	t.Cleanup(func() { migrations = orig })

	path := filepath.Join(t.TempDir(), "mcpauth.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var order []string
	step := func(name string, fail bool) migration {
		return migration{name: name, apply: func(tx *bolt.Tx) error {
			order = append(order, name)
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
			if fail {
				return errors.New("boom")
			}
			return nil
		}}
	}
	migrations = append(append([]migration{}, orig...), step("v2test", false), step("v3test", true))
	if s, err := Open(path, Options{NoSync: true}); err == nil {
		s.Close()
		t.Fatal("Open succeeded through a failing migration")
	}
	if len(order) != 2 || order[0] != "v2test" || order[1] != "v3test" {
		t.Fatalf("migrations ran as %v", order)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		if v, _ := schemaVersion(tx); v != uint64(len(orig))+1 {
			t.Errorf("version after a failed migration = %d, want %d", v, len(orig)+1)
		}
		if tx.Bucket([]byte("v2test")) == nil || tx.Bucket([]byte("v3test")) != nil {
			t.Error("the failed migration was not rolled back alone")
		}
		return nil
	})
	db.Close()

	order = nil
	migrations = append(append([]migration{}, orig...), step("v2test", false), step("v3test", false))
	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if len(order) != 1 || order[0] != "v3test" {
		t.Fatalf("pending migrations ran as %v, want only v3test", order)
	}
	if v := storedVersion(t, s); v != uint64(len(orig))+2 {
		t.Fatalf("version = %d", v)
	}
}

func TestOpenFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "mcpauth")
	path := filepath.Join(dir, "mcpauth.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm()&0o077 != 0 {
		t.Fatalf("directory mode %v, want 0700", di.Mode().Perm())
	}
}

func TestOpenRefusals(t *testing.T) {
	t.Run("EmptyPath", func(t *testing.T) {
		if _, err := Open("", Options{}); err == nil {
			t.Fatal("Open accepted an empty path")
		}
	})
	t.Run("LockedFileTimesOut", func(t *testing.T) {
		_, path := openTemp(t)
		s2, err := Open(path, Options{Timeout: 50 * time.Millisecond, NoSync: true})
		if err == nil {
			s2.Close()
			t.Fatal("a second Open of a locked file succeeded")
		}
		if !errors.Is(err, berrors.ErrTimeout) {
			t.Fatalf("second Open: %v, want a timeout", err)
		}
	})
}

func TestCloseTwice(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestHashKeysOnly: the hash-keyed records refuse anything but a SHA-256,
// so a caller that forgot to hash a secret cannot persist it.
func TestHashKeysOnly(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	raw := []byte("raw-secret-value-not-hashed")
	exp := time.Now().Add(time.Hour)
	if err := s.SaveCode(ctx, storage.AuthCode{Hash: raw, ExpiresAt: exp}); err == nil {
		t.Error("SaveCode accepted an unhashed key")
	}
	if err := s.CreateSession(ctx, storage.Session{Hash: raw, AccountID: "a", ExpiresAt: exp}); err == nil {
		t.Error("CreateSession accepted an unhashed key")
	}
	if err := s.PutTicket(ctx, storage.Ticket{Kind: "k", Hash: raw, ExpiresAt: exp}); err == nil {
		t.Error("PutTicket accepted an unhashed key")
	}
	if err := s.CreateGrant(ctx, storage.Grant{ID: "g", RefreshHash: raw}); err == nil {
		t.Error("CreateGrant accepted an unhashed refresh token")
	}
	if _, err := s.RotateRefresh(ctx, storage.Rotation{Presented: raw, Next: raw, Now: exp}); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RotateRefresh with an unhashed next token: %v", err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range v1Buckets {
			if k, _ := bucket(tx, name).Cursor().First(); k != nil {
				t.Errorf("v1/%s is not empty after refused writes", name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAuditKeys: keys sort by event time, then append order.
func TestAuditKeys(t *testing.T) {
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	keys := [][]byte{
		auditKey(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), 9),
		auditKey(base, 1),
		auditKey(base, 2),
		auditKey(base.Add(time.Nanosecond), 0),
		auditKey(base.Add(time.Hour), 0),
	}
	for i := 1; i < len(keys); i++ {
		if bytes.Compare(keys[i-1], keys[i]) >= 0 {
			t.Fatalf("key %d does not sort after key %d", i, i-1)
		}
	}
	if binary.BigEndian.Uint64(keys[0][:8]) != 0 {
		t.Fatal("pre-1970 time not clamped to 0")
	}
}

// TestEmptyAndHostileKeys: lookups with empty or oversized keys answer
// ErrNotFound (never panic), and writes with them are refused.
func TestEmptyAndHostileKeys(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	now := time.Now()
	huge := string(bytes.Repeat([]byte("x"), maxComposite+1))
	for name, err := range map[string]error{
		"GetClient":      func() error { _, err := s.GetClient(ctx, ""); return err }(),
		"GetGrant":       func() error { _, err := s.GetGrant(ctx, ""); return err }(),
		"GrantByRefresh": func() error { _, err := s.GrantByRefresh(ctx, nil); return err }(),
		"RotateRefresh": func() error {
			_, err := s.RotateRefresh(ctx, storage.Rotation{Next: make([]byte, 32), Now: now})
			return err
		}(),
		"RedeemCode":        func() error { _, err := s.RedeemCode(ctx, nil, now, nil); return err }(),
		"GetSession":        func() error { _, err := s.GetSession(ctx, nil); return err }(),
		"TakeTicket":        func() error { _, err := s.TakeTicket(ctx, "", nil, now); return err }(),
		"GetConsent":        func() error { _, err := s.GetConsent(ctx, "", huge); return err }(),
		"AccountByIdentity": func() error { _, err := s.AccountByIdentity(ctx, huge, ""); return err }(),
		"GetAccountByEmail": func() error { _, err := s.GetAccountByEmail(ctx, ""); return err }(),
		"DeleteConsent":     s.DeleteConsent(ctx, "", huge),
	} {
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if n, err := s.RevokeClientGrants(ctx, huge, "x", now); err != nil || n != 0 {
		t.Errorf("RevokeClientGrants(huge) = %d, %v", n, err)
	}
	for name, err := range map[string]error{
		"CreateClient":  s.CreateClient(ctx, storage.Client{}),
		"CreateClient2": s.CreateClient(ctx, storage.Client{ID: huge}),
		"CreateGrant":   s.CreateGrant(ctx, storage.Grant{}),
		"PutConsent":    s.PutConsent(ctx, storage.Consent{Subject: "s", ClientID: huge}),
		"CreateAccount": s.CreateAccount(ctx, storage.Account{}),
		"LinkIdentity":  s.LinkIdentity(ctx, "", "", "a"),
		"AddSigningKey": s.AddSigningKey(ctx, storage.SigningKey{ID: "k"}, "", now),
	} {
		if err == nil {
			t.Errorf("%s accepted an invalid record", name)
		}
	}
}

func TestOpenWarnsAboutWideFileMode(t *testing.T) {
	path := rawFile(t, func(*bolt.Tx) error { return nil })
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := Open(path, Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !bytes.Contains(logs.Bytes(), []byte("readable by other users")) {
		t.Fatalf("no warning about mode 0644; logs:\n%s", logs.String())
	}
}

func TestBackupRestores(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	if err := s.CreateClient(ctx, storage.Client{ID: "client-1", Name: "Backed up"}); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.OpenFile(copyPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(ctx, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n == 0 {
		t.Fatalf("Backup = %d, %v", n, err)
	}
	restored, err := Open(copyPath, Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open backup: %v", err)
	}
	defer restored.Close()
	got, err := restored.GetClient(ctx, "client-1")
	if err != nil || got.Name != "Backed up" {
		t.Fatalf("client in the backup: %+v, %v", got, err)
	}
}

// TestOpenRefusesIncompleteCopy: a file a copy started filling and never
// finished (migrate-store failed or was killed) does not open, so no
// server starts on half the records; a finished copy opens.
func TestOpenRefusesIncompleteCopy(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	if err := s.BeginImport(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.ImportBatch(ctx, []storage.Record{{Kind: storage.KindClient, Client: &storage.Client{ID: "c1", Kind: storage.ClientOwned}}}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_, err := Open(path, Options{NoSync: true})
	if !errors.Is(err, storage.ErrIncompleteCopy) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a half-copied file: %v, want ErrIncompleteCopy naming the file", err)
	}

	s2, path2 := openTemp(t)
	if err := s2.BeginImport(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.FinishImport(ctx); err != nil {
		t.Fatal(err)
	}
	_ = s2.Close()
	s3, err := Open(path2, Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open of a finished copy: %v", err)
	}
	_ = s3.Close()
}
