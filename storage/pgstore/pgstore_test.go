package pgstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC)

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func TestOpenConfigErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty DSN", Config{}, "empty DSN"},
		{"schema with quote", Config{DSN: "postgres://localhost/x", Schema: `a"b`}, "invalid schema name"},
		{"schema with dot", Config{DSN: "postgres://localhost/x", Schema: "a.b"}, "invalid schema name"},
		{"schema starting with digit", Config{DSN: "postgres://localhost/x", Schema: "1abc"}, "invalid schema name"},
		{"schema too long", Config{DSN: "postgres://localhost/x", Schema: strings.Repeat("a", 64)}, "invalid schema name"},
		{"negative max", Config{DSN: "postgres://localhost/x", MaxConns: -1}, "negative pool limit"},
		{"negative lifetime", Config{DSN: "postgres://localhost/x", ConnMaxLifetime: -time.Second}, "negative pool limit"},
		{"min above max", Config{DSN: "postgres://localhost/x", MaxConns: 2, MinConns: 3}, "exceeds max_conns"},
		{"unparsable DSN", Config{DSN: "postgres://u:hunter2@[::1"}, "parse DSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(ctx, tt.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %q", err)
			}
		})
	}
}

// TestOpenConcurrentMigrations starts 8 instances at once on a fresh schema:
// every Open succeeds and each migration is applied exactly once.
func TestOpenConcurrentMigrations(t *testing.T) {
	schema := freshSchema(t)
	const n = 8
	var (
		wg      sync.WaitGroup
		applied atomic.Int64
		errs    = make(chan error, n)
		stores  = make(chan *Store, n)
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			s, err := Open(context.Background(), Config{DSN: testDSN(t), Schema: schema, MaxConns: 2})
			if err != nil {
				errs <- err
				return
			}
			applied.Add(int64(s.applied))
			stores <- s
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	close(stores)
	for err := range errs {
		t.Errorf("Open: %v", err)
	}
	var s *Store
	for st := range stores {
		if s == nil {
			s = st
			t.Cleanup(func() { st.Close() })
		} else {
			st.Close()
		}
	}
	if s == nil {
		t.Fatal("no store opened")
	}
	if got := applied.Load(); got != int64(len(migrations)) {
		t.Fatalf("migrations applied %d times in total, want %d (each exactly once)", got, len(migrations))
	}
	ctx := context.Background()
	var rows, distinct int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM mcpauth_schema_migrations`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != len(migrations) || distinct != len(migrations) {
		t.Fatalf("mcpauth_schema_migrations has %d rows (%d versions), want %d", rows, distinct, len(migrations))
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := migrations[len(migrations)-1].version; v != want {
		t.Fatalf("SchemaVersion = %d, want %d", v, want)
	}
	// A later start applies nothing.
	again := openIn(t, schema)
	if again.applied != 0 {
		t.Fatalf("reopen applied %d migrations, want 0", again.applied)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	schema := freshSchema(t)
	s := openIn(t, schema)
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO mcpauth_schema_migrations (version, name) VALUES (9999, 'from the future')`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Config{DSN: testDSN(t), Schema: schema})
	if err == nil || !strings.Contains(err.Error(), "newer than this build supports") {
		t.Fatalf("Open = %v, want a refusal of schema version 9999", err)
	}
}

// TestDefaultSchema opens without Config.Schema: the tables go to the first
// schema of the search_path given in the DSN.
func TestDefaultSchema(t *testing.T) {
	schema := freshSchema(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	pc, err := pgx.ParseConfig(testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	dsn := pc.ConnString()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if strings.Contains(dsn, "://") {
		dsn += sep + "search_path=" + schema
	} else {
		dsn += " search_path=" + schema
	}
	s, err := Open(ctx, Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.applied != len(migrations) {
		t.Fatalf("applied %d migrations, want %d", s.applied, len(migrations))
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'mcpauth_%'`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("%d mcpauth tables in schema %s, want the full schema", n, schema)
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "40001"}, true},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "40P01"}), true},
		{&pgconn.PgError{Code: "23505"}, false},
		{errors.New("other"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestInTxRetriesSerializationFailures: a transaction failing with 40001
// runs again, its writes of the failed attempt rolled back; after
// maxAttempts the error is returned.
func TestInTxRetriesSerializationFailures(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	calls := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		calls++
		if _, err := tx.Exec(ctx, `INSERT INTO mcpauth_clients (id, kind, data) VALUES ('c', 'owned', '{"id":"c"}')`); err != nil {
			return err
		}
		if calls < 3 {
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("inTx = %v after %d calls, want success after 3", err, calls)
	}
	if _, err := s.GetClient(ctx, "c"); err != nil {
		t.Fatalf("GetClient after retried insert: %v", err)
	}
	calls = 0
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		calls++
		return &pgconn.PgError{Code: "40001"}
	})
	if !retryable(err) || calls != maxAttempts {
		t.Fatalf("inTx = %v after %d calls, want the 40001 error after %d", err, calls, maxAttempts)
	}
}

// TestRealSerializationFailureIsRetried provokes a genuine 40001: two
// SERIALIZABLE transactions each read what the other writes.
func TestRealSerializationFailureIsRetried(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE ctr (k int PRIMARY KEY, v int NOT NULL); INSERT INTO ctr VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}
	// once() runs at READ COMMITTED; run SERIALIZABLE by hand in fn.
	var wg sync.WaitGroup
	ready := make(chan struct{}, 2)
	proceed := make(chan struct{})
	var attempts atomic.Int64
	run := func(read, write int) error {
		first := true
		return s.inTx(ctx, func(tx pgx.Tx) error {
			attempts.Add(1)
			if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`); err != nil {
				return err
			}
			var v int
			if err := tx.QueryRow(ctx, `SELECT v FROM ctr WHERE k = $1`, read).Scan(&v); err != nil {
				return err
			}
			if first {
				first = false
				ready <- struct{}{}
				<-proceed
			}
			_, err := tx.Exec(ctx, `UPDATE ctr SET v = $2 WHERE k = $1`, write, v+1)
			return err
		})
	}
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = run(1, 2) })
	wg.Go(func() { errs[1] = run(2, 1) })
	<-ready
	<-ready
	close(proceed)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	if attempts.Load() < 3 {
		t.Fatalf("%d attempts: expected one transaction to fail with 40001 and be retried", attempts.Load())
	}
}

func TestErrorMapping(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	c := storage.Client{ID: "c1", Kind: storage.ClientOwned, CreatedAt: t0}
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, c); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("second CreateClient = %v, want ErrAlreadyExists", err)
	}
	if err := s.CreateAccount(ctx, storage.Account{ID: "a1", Email: "x@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, storage.Account{ID: "a2", Email: "X@Example.com"}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("CreateAccount with a taken email (other case) = %v, want ErrAlreadyExists", err)
	}
	if err := s.LinkIdentity(ctx, "oidc:x", "sub", "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("LinkIdentity to an unknown account = %v, want ErrNotFound", err)
	}
	if _, err := s.GetClient(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetClient(unknown) = %v, want ErrNotFound", err)
	}
}

// TestOpenConnectionSettings: connection failures name the problem without
// echoing the password, and TLS settings of the DSN are honored (the test
// server speaks no TLS, so sslmode=require must fail).
func TestOpenConnectionSettings(t *testing.T) {
	pc, err := pgx.ParseConfig(testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	if pc.Host == "" || strings.HasPrefix(pc.Host, "/") {
		t.Skip("pgstore: the test DSN uses a unix socket; these cases need TCP")
	}
	base := fmt.Sprintf("postgres://%s:%%s@%s:%d/%s", pc.User, pc.Host, pc.Port, pc.Database)
	tests := []struct {
		name, dsn, want string
	}{
		{"wrong password", fmt.Sprintf(base, "wrong-hunter2") + "?sslmode=disable", "connect"},
		{"sslmode require without server TLS", fmt.Sprintf(base, pc.Password) + "?sslmode=require", "tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := Open(ctx, Config{DSN: tt.dsn, Schema: "mcpauth_never_created"})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %q, want it to mention %q", err, tt.want)
			}
			for _, secret := range []string{"wrong-hunter2", pc.Password} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks the password: %q", err)
				}
			}
		})
	}
}

// TestMigrationsUpgradeAndRollback: a later build's migration is applied on
// the next Open, exactly once; a failing migration rolls back every step of
// its Open (schema creation included) and leaves the database as it was.
func TestMigrationsUpgradeAndRollback(t *testing.T) {
	orig := migrations
	t.Cleanup(func() { migrations = orig })
	ctx := context.Background()
	tableCount := func(schema string) int {
		conn, err := pgx.Connect(ctx, testDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("failing migration on a fresh schema leaves nothing", func(t *testing.T) {
		schema := freshSchema(t)
		migrations = append(append([]migration(nil), orig...), migration{orig[len(orig)-1].version + 1, "broken",
			`CREATE TABLE mcpauth_half_done (id int); SELECT 1/0`})
		defer func() { migrations = orig }()
		if _, err := Open(ctx, Config{DSN: testDSN(t), Schema: schema}); err == nil || !strings.Contains(err.Error(), "broken") {
			t.Fatalf("Open = %v, want the broken migration's error", err)
		}
		if n := tableCount(schema); n != 0 {
			t.Fatalf("%d tables left behind by a failed migration", n)
		}
	})

	t.Run("upgrade applies only the new migration", func(t *testing.T) {
		schema := freshSchema(t)
		s := openIn(t, schema)
		before := tableCount(schema)
		next := orig[len(orig)-1].version + 1
		migrations = append(append([]migration(nil), orig...), migration{next, "add a table", `CREATE TABLE mcpauth_upgrade_probe (id int)`})
		defer func() { migrations = orig }()
		up := openIn(t, schema)
		if up.applied != 1 {
			t.Fatalf("upgrade applied %d migrations, want 1", up.applied)
		}
		if v, err := s.SchemaVersion(ctx); err != nil || v != next {
			t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, next)
		}
		if n := tableCount(schema); n != before+1 {
			t.Fatalf("%d tables after the upgrade, want %d", n, before+1)
		}
		// The previous build now refuses the newer schema.
		migrations = orig
		if _, err := Open(ctx, Config{DSN: testDSN(t), Schema: schema}); err == nil {
			t.Fatal("an older build opened a newer schema")
		}
	})
}

// TestDeleteExpiredRemovesRefreshFamily: an expired grant goes with every
// refresh token hash of its family.
func TestDeleteExpiredRemovesRefreshFamily(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	g := storage.Grant{ID: "g", ClientID: "c", Subject: "s", RefreshHash: hash("r0"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateGrant(ctx, g))
	if _, err := s.RotateRefresh(ctx, storage.Rotation{Presented: hash("r0"), Next: hash("r1"), Now: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpired(ctx, t0.Add(time.Hour-time.Microsecond), time.Time{}); err != nil || n != 0 {
		t.Fatalf("DeleteExpired before expiry = %d, %v; want 0", n, err)
	}
	if n, err := s.DeleteExpired(ctx, t0.Add(time.Hour), time.Time{}); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
	}
	var left int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM mcpauth_refresh_tokens`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d refresh token hashes outlived their grant", left)
	}
	for _, r := range []string{"r0", "r1"} {
		if _, err := s.GrantByRefresh(ctx, hash(r)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("GrantByRefresh(%s) = %v, want ErrNotFound", r, err)
		}
	}
}

func TestPingAndClose(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

// TestOpenRefusesIncompleteCopy: a database a copy started filling and
// never finished does not open (no instance starts on half the records);
// a finished copy opens.
func TestOpenRefusesIncompleteCopy(t *testing.T) {
	ctx := t.Context()
	schema := freshSchema(t)
	s := openIn(t, schema)
	if err := s.BeginImport(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.ImportBatch(ctx, []storage.Record{{Kind: storage.KindClient, Client: &storage.Client{ID: "c1", Kind: storage.ClientOwned}}}); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, Config{DSN: testDSN(t), Schema: schema})
	if !errors.Is(err, storage.ErrIncompleteCopy) {
		t.Fatalf("Open of a half-copied database: %v, want ErrIncompleteCopy", err)
	}
	if err := s.FinishImport(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, Config{DSN: testDSN(t), Schema: schema})
	if err != nil {
		t.Fatalf("Open of a finished copy: %v", err)
	}
	_ = again.Close()
}
