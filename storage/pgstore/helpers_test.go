package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// dsnEnv names the variable holding the test server's DSN. scripts/pg-test.sh
// starts a throwaway server and prints it.
const dsnEnv = "MCPAUTH_TEST_POSTGRES_DSN"

// testDSN returns the test server's DSN. Without one the test fails when
// CI=true (a CI run must not silently skip the PostgreSQL backend) and is
// skipped, saying why, otherwise.
func testDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		const msg = dsnEnv + ` is not set: these tests need a real PostgreSQL server. ` +
			`Run them with: scripts/pg-test.sh run go test -race ./storage/pgstore/`
		if os.Getenv("CI") == "true" || os.Getenv("MCPAUTH_TEST_STRICT") == "1" {
			tb.Fatal("pgstore: " + msg + " (CI or scripts/test.sh: refusing to skip)")
		}
		tb.Skip("pgstore: " + msg)
	}
	return dsn
}

// freshSchema returns the name of a schema that does not exist yet and drops
// it (with everything in it) when the test ends.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	dsn := testDSN(tb)
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "mcpauth_test_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("drop schema %s: connect: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// openIn opens a store on schema (an extra "instance" when called twice).
func openIn(tb testing.TB, schema string) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, Config{DSN: testDSN(tb), Schema: schema, MaxConns: 8})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// openTest opens a store on a fresh schema of its own.
func openTest(tb testing.TB) *Store {
	tb.Helper()
	return openIn(tb, freshSchema(tb))
}
