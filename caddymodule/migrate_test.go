package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
	"github.com/mcpauth/caddy-mcpauth/storage/pgstore"
)

const pgDSNEnv = "MCPAUTH_TEST_POSTGRES_DSN"

// migrateTestDSN returns the test server's DSN: fails when it is unset
// and CI=true, skips saying why otherwise.
func migrateTestDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(pgDSNEnv)
	if dsn == "" {
		const msg = pgDSNEnv + " is not set: the migrate-store tests need a real PostgreSQL server. " +
			"Run them with: scripts/pg-test.sh run go test -race -run MigrateStore ./caddymodule/"
		if os.Getenv("CI") == "true" || os.Getenv("MCPAUTH_TEST_STRICT") == "1" {
			t.Fatal(msg + " (CI=true: refusing to skip)")
		}
		t.Skip(msg)
	}
	return dsn
}

// schemaDSN creates a fresh schema (dropped at the end of t) and returns a
// DSN whose search_path points at it.
func schemaDSN(t *testing.T) string {
	t.Helper()
	dsn := migrateTestDSN(t)
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "mcpauth_migrate_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + " search_path=" + name // keyword/value DSN
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func sum256(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

var mt0 = time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)

// fillMigrateSource writes one record of every kind, a used code whose
// grant was rotated (r0 -> r1 -> r2) and audit events.
func fillMigrateSource(t *testing.T, b storage.Backend) {
	t.Helper()
	ctx := t.Context()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("CreateClient", b.CreateClient(ctx, storage.Client{ID: "client-1", Kind: storage.ClientOwned, Name: "One",
		RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: "none", CreatedAt: mt0}))
	must("AddSigningKey", b.AddSigningKey(ctx, storage.SigningKey{ID: "kid-1", Algorithm: "ES256",
		PrivateJWK: []byte(`{"kty":"EC"}`), CreatedAt: mt0}, "", time.Time{}))
	must("CreateAccount", b.CreateAccount(ctx, storage.Account{ID: "acct-1", Email: "alice@example.com",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", CreatedAt: mt0}))
	must("LinkIdentity", b.LinkIdentity(ctx, "oidc:corp", "sub-1", "acct-1"))
	must("PutConsent", b.PutConsent(ctx, storage.Consent{Subject: "acct-1", ClientID: "client-1",
		Scopes: []string{"mcp"}, GrantedAt: mt0, ExpiresAt: mt0.Add(time.Hour)}))
	must("SaveCode", b.SaveCode(ctx, storage.AuthCode{Hash: sum256("code"), ClientID: "client-1",
		Subject: "acct-1", GrantID: "grant-1", CreatedAt: mt0, ExpiresAt: mt0.Add(time.Minute)}))
	_, err := b.RedeemCode(ctx, sum256("code"), mt0.Add(time.Second), func(c storage.AuthCode) (*storage.Grant, error) {
		return &storage.Grant{ID: c.GrantID, ClientID: c.ClientID, Subject: c.Subject, RefreshHash: sum256("r0"),
			CreatedAt: mt0, RefreshExpiresAt: mt0.Add(time.Hour), ExpiresAt: mt0.Add(24 * time.Hour)}, nil
	})
	must("RedeemCode", err)
	_, err = b.RotateRefresh(ctx, storage.Rotation{Presented: sum256("r0"), Next: sum256("r1"),
		Now: mt0.Add(2 * time.Second), NextExpiresAt: mt0.Add(time.Hour)})
	must("RotateRefresh", err)
	_, err = b.RotateRefresh(ctx, storage.Rotation{Presented: sum256("r1"), Next: sum256("r2"),
		Now: mt0.Add(3 * time.Second), NextExpiresAt: mt0.Add(time.Hour)})
	must("RotateRefresh", err)
	must("CreateSession", b.CreateSession(ctx, storage.Session{Hash: sum256("sid"), AccountID: "acct-1",
		Method: "password", CreatedAt: mt0, LastSeenAt: mt0, ExpiresAt: mt0.Add(time.Hour)}))
	must("PutTicket", b.PutTicket(ctx, storage.Ticket{Kind: "oidc", Hash: sum256("ticket"), Value: []byte("v"),
		ExpiresAt: mt0.Add(time.Minute)}))
	must("AppendAudit", b.AppendAudit(ctx,
		storage.AuditEvent{Time: mt0, Type: "login.success", Subject: "acct-1"},
		storage.AuditEvent{Time: mt0.Add(time.Second), Type: "token.issued", Subject: "acct-1", ClientID: "client-1"},
		storage.AuditEvent{Time: mt0.Add(time.Second), Type: "token.refreshed", Subject: "acct-1", ClientID: "client-1"},
	))
}

// runMigrate runs the cobra command as the CLI would.
func runMigrate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewMigrateStoreCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// checkMigrated asserts the behaviour that must survive a move: reuse
// detection of a rotated-out refresh token, the used code, the audit log.
func checkMigrated(t *testing.T, b storage.Backend, wantAudit []storage.AuditEvent) {
	t.Helper()
	ctx := t.Context()
	if _, err := b.RedeemCode(ctx, sum256("code"), mt0.Add(3*time.Second), func(storage.AuthCode) (*storage.Grant, error) {
		t.Fatal("issue called for a used code")
		return nil, nil
	}); !errors.Is(err, storage.ErrCodeUsed) {
		t.Fatalf("RedeemCode of the used code: %v, want ErrCodeUsed", err)
	}
	if _, err := b.RotateRefresh(ctx, storage.Rotation{Presented: sum256("r0"), Next: sum256("r9"),
		Now: mt0.Add(4 * time.Second), NextExpiresAt: mt0.Add(time.Hour)}); !errors.Is(err, storage.ErrRefreshReused) {
		t.Fatalf("RotateRefresh of the rotated-out token: %v, want ErrRefreshReused", err)
	}
	got, err := b.ListAudit(ctx, storage.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatalf("ListAudit: %v", err)
	}
	if len(got) != len(wantAudit) {
		t.Fatalf("audit: %d events, want %d", len(got), len(wantAudit))
	}
	for i := range got {
		if got[i].ID != wantAudit[i].ID || got[i].Type != wantAudit[i].Type || !got[i].Time.Equal(wantAudit[i].Time) {
			t.Fatalf("audit event %d = %+v, want %+v", i, got[i], wantAudit[i])
		}
	}
	if a, err := b.AccountByIdentity(ctx, "oidc:corp", "sub-1"); err != nil || a.ID != "acct-1" {
		t.Fatalf("AccountByIdentity = %+v, %v", a, err)
	}
	if _, err := b.TakeTicket(ctx, "oidc", sum256("ticket"), mt0); err != nil {
		t.Fatalf("TakeTicket: %v", err)
	}
}

func TestMigrateStore(t *testing.T) {
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "src.db")
	src, err := bboltstore.Open(srcPath, bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillMigrateSource(t, src)
	wantAudit, err := src.ListAudit(t.Context(), storage.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("LockedSourceIsRefused", func(t *testing.T) {
		// src is still open: a running server holds the file.
		dst := filepath.Join(t.TempDir(), "dst.db")
		out, err := runMigrate(t, "--from", "bbolt:"+srcPath, "--to", "bbolt:"+dst, "--lock-timeout", "50ms")
		if err == nil || !strings.Contains(err.Error(), "stop the Caddy server") {
			t.Fatalf("err = %v, want the lock refusal; output:\n%s", err, out)
		}
		if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("destination created despite the refusal: %v", err)
		}
	})
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	dsn := schemaDSN(t)
	t.Setenv("MCPAUTH_MIGRATE_TEST_DSN", dsn)
	pgcfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("BboltToPostgres", func(t *testing.T) {
		// 12 records in transactions of at most 5.
		out, err := runMigrate(t, "--from", "bbolt:"+srcPath, "--to", "postgres:env:MCPAUTH_MIGRATE_TEST_DSN", "--batch", "5")
		if err != nil {
			t.Fatalf("migrate-store: %v\n%s", err, out)
		}
		for _, want := range []string{"grant  1  1  same", "audit  3  3  same", "total  12  12", "OK: postgres://", "(3 batches)"} {
			if !strings.Contains(normalizeSpaces(out), want) {
				t.Fatalf("output lacks %q:\n%s", want, out)
			}
		}
		if pgcfg.Password != "" && strings.Contains(out, pgcfg.Password) {
			t.Fatal("output contains the database password")
		}
	})

	t.Run("NonEmptyDestinationIsRefused", func(t *testing.T) {
		out, err := runMigrate(t, "--from", "bbolt:"+srcPath, "--to", "postgres:env:MCPAUTH_MIGRATE_TEST_DSN")
		if !errors.Is(err, storage.ErrNotEmpty) {
			t.Fatalf("err = %v, want ErrNotEmpty; output:\n%s", err, out)
		}
	})

	back := filepath.Join(t.TempDir(), "back.db")
	t.Run("PostgresToBbolt", func(t *testing.T) {
		out, err := runMigrate(t, "--from", "postgres:env:MCPAUTH_MIGRATE_TEST_DSN", "--to", "bbolt:"+back)
		if err != nil {
			t.Fatalf("migrate-store: %v\n%s", err, out)
		}
		if !strings.Contains(normalizeSpaces(out), "total  12  12") {
			t.Fatalf("output:\n%s", out)
		}
		fi, err := os.Stat(back)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("new bbolt file mode %v, want 0600", fi.Mode().Perm())
		}
	})

	t.Run("MovedStoresBehave", func(t *testing.T) {
		pg, err := pgstore.Open(t.Context(), pgstore.Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		defer pg.Close()
		checkMigrated(t, pg, wantAudit)
		bb, err := bboltstore.Open(back, bboltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer bb.Close()
		checkMigrated(t, bb, wantAudit)
	})
}

// normalizeSpaces collapses runs of two or more spaces to two, so the table can be
// matched whatever the column widths.
func normalizeSpaces(s string) string {
	var b strings.Builder
	spaces := 0
	for _, r := range s {
		if r == ' ' {
			spaces++
			continue
		}
		switch {
		case spaces == 1:
			b.WriteString(" ")
		case spaces > 1:
			b.WriteString("  ")
		}
		spaces = 0
		b.WriteRune(r)
	}
	return b.String()
}

func TestMigrateStoreRefusals(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.db")
	s, err := bboltstore.Open(existing, bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	t.Setenv("MCPAUTH_MIGRATE_EMPTY", "")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"NoFrom", []string{"--to", "bbolt:" + filepath.Join(dir, "a.db")}, `required flag(s) "from"`},
		{"NoTo", []string{"--from", "bbolt:" + existing}, `required flag(s) "to"`},
		{"NoBackend", []string{"--from", existing, "--to", "bbolt:" + filepath.Join(dir, "b.db")}, "a store is bbolt:<path>"},
		{"EmptyPath", []string{"--from", "bbolt:", "--to", "bbolt:" + filepath.Join(dir, "c.db")}, "a store is bbolt:<path>"},
		{"UnknownBackend", []string{"--from", "mysql:x", "--to", "bbolt:" + filepath.Join(dir, "d.db")}, `unknown store backend "mysql"`},
		{"UnsetEnv", []string{"--from", "bbolt:" + existing, "--to", "postgres:env:MCPAUTH_MIGRATE_EMPTY"}, "MCPAUTH_MIGRATE_EMPTY is empty or unset"},
		{"EnvWithoutName", []string{"--from", "bbolt:" + existing, "--to", "postgres:env:"}, "needs a variable name"},
		{"BadDSN", []string{"--from", "bbolt:" + existing, "--to", "postgres:postgres://u:hunter2@[::1"}, "postgres DSN"},
		{"SameStore", []string{"--from", "bbolt:" + existing, "--to", "bbolt:" + existing}, "same store"},
		{"MissingSource", []string{"--from", "bbolt:" + filepath.Join(dir, "missing.db"), "--to", "bbolt:" + filepath.Join(dir, "e.db")}, "does not exist"},
		{"ExtraArgument", []string{"--from", "bbolt:" + existing, "--to", "bbolt:" + filepath.Join(dir, "f.db"), "extra"}, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runMigrate(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if strings.Contains(out+err.Error(), "hunter2") {
				t.Fatal("a password was echoed")
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("refused runs created files: %v", entries)
	}
}

// TestMigrateStoreFailedCopyRemovesNewFile: a copy that fails after the
// destination file was created leaves no file behind.
func TestMigrateStoreFailedCopyRemovesNewFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	s, err := bboltstore.Open(src, bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillMigrateSource(t, s)
	_ = s.Close()
	dst := filepath.Join(dir, "dst.db")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = MigrateStore(ctx, MigrateOptions{From: "bbolt:" + src, To: "bbolt:" + dst})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed copy left %s behind: %v", dst, err)
	}
}

// TestMigrateStoreFailedCopyIsMarkedIncomplete: a copy whose last batch
// fails leaves the earlier batches in the destination, marked incomplete:
// the store does not open (no server starts on it), migrate-store refuses
// it, and the message says how to retry; after dropping the schema the
// same command succeeds.
func TestMigrateStoreFailedCopyIsMarkedIncomplete(t *testing.T) {
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "src.db")
	src, err := bboltstore.Open(srcPath, bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillMigrateSource(t, src)
	_ = src.Close()

	dsn := schemaDSN(t)
	t.Setenv("MCPAUTH_MIGRATE_TEST_DSN", dsn)
	ctx := t.Context()
	// The destination refuses audit rows: the batch holding them fails
	// after the batches before it committed.
	pg, err := pgstore.Open(ctx, pgstore.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	_ = pg.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'audit refused by the test'; END$$;
CREATE TRIGGER refuse_audit BEFORE INSERT ON mcpauth_audit FOR EACH ROW EXECUTE FUNCTION refuse_audit();`); err != nil {
		t.Fatal(err)
	}

	out, err := runMigrate(t, "--from", "bbolt:"+srcPath, "--to", "postgres:env:MCPAUTH_MIGRATE_TEST_DSN", "--batch", "4")
	if !errors.Is(err, storage.ErrCopyIncomplete) {
		t.Fatalf("err = %v, want ErrCopyIncomplete; output:\n%s", err, out)
	}
	t.Logf("failed copy: %v", err)
	for _, want := range []string{"left marked incomplete", "servers refuse to start", "drop its schema", "run the command again"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(out, "OK:") {
		t.Fatalf("failed copy printed OK:\n%s", out)
	}
	var clients int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM mcpauth_clients`).Scan(&clients); err != nil || clients != 1 {
		t.Fatalf("clients in the destination: %d, %v; want the first batch committed", clients, err)
	}
	if _, err := pgstore.Open(ctx, pgstore.Config{DSN: dsn}); !errors.Is(err, storage.ErrIncompleteCopy) {
		t.Fatalf("Open of the half-copied database: %v, want ErrIncompleteCopy", err)
	}
	out, err = runMigrate(t, "--from", "bbolt:"+srcPath, "--to", "postgres:env:MCPAUTH_MIGRATE_TEST_DSN")
	if !errors.Is(err, storage.ErrIncompleteCopy) {
		t.Fatalf("second run into the marked database: %v, want ErrIncompleteCopy; output:\n%s", err, out)
	}

	// Drop and run again, as the message says.
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE; CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	out, err = runMigrate(t, "--from", "bbolt:"+srcPath, "--to", "postgres:env:MCPAUTH_MIGRATE_TEST_DSN", "--batch", "4")
	if err != nil || !strings.Contains(normalizeSpaces(out), "total  12  12") {
		t.Fatalf("migrate-store after dropping: %v\n%s", err, out)
	}
	again, err := pgstore.Open(ctx, pgstore.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("Open after the finished copy: %v", err)
	}
	_ = again.Close()
}

// FuzzParseStoreLocation: any --from/--to value parses or is refused
// without panicking, and neither a refusal nor the printed form of a store
// carries the DSN's password.
func FuzzParseStoreLocation(f *testing.F) {
	for _, s := range []string{
		"bbolt:/var/lib/mcpauth.db", "bbolt:", "postgres:env:X", "postgres:env:", "mysql:x", "", ":", "bbolt",
		"postgres:postgres://u:@h/db", "postgres:host=h", "postgres://u:pw@h/db",
	} {
		f.Add(s, "Pw9xQ")
	}
	env := func(string) string { return "postgres://envuser:EnvPw7@127.0.0.1/db" }
	f.Fuzz(func(t *testing.T, s, pw string) {
		check := func(in, secret string) {
			loc, err := parseStoreLocation(in, env)
			var out string
			if err != nil {
				out = err.Error()
			} else {
				out = loc.display
				if loc.backend != "bbolt" && loc.backend != "postgres" {
					t.Fatalf("backend %q", loc.backend)
				}
			}
			if secret != "" && strings.Contains(out, secret) {
				t.Fatalf("%q: output %q carries the password", in, out)
			}
		}
		check(s, "EnvPw7")
		// A password worth looking for: long enough not to match by chance.
		secret := ""
		if len(pw) >= 5 && strings.IndexFunc(pw, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) < 0 && !strings.Contains(s, pw) {
			secret = pw
		}
		check("postgres:postgres://u:"+pw+"@"+s+"/db", secret)
		check("postgres:host=h user=u password="+pw+" "+s, secret)
		check("postgres://u:"+pw+"@h/"+s, secret)
	})
}

func TestParseStoreLocation(t *testing.T) {
	env := func(name string) string {
		if name == "DSN" {
			return "postgres://envuser:EnvPw7@db.internal:5433/mcp?sslmode=verify-full"
		}
		return ""
	}
	cases := []struct {
		name, in, backend, dsn, display string
	}{
		{"Bbolt", "bbolt:/var/lib/m.db", "bbolt", "", "bbolt:/var/lib/m.db"},
		{"PostgresURL", "postgres:postgres://u:pw@h:5432/d", "postgres", "postgres://u:pw@h:5432/d", "postgres://u@h:5432/d"},
		{"BareURL", "postgres://u:pw@h/d", "postgres", "postgres://u:pw@h/d", "postgres://u@h:5432/d"},
		{"KeywordValue", "postgresql:host=h user=u password=pw dbname=d", "postgres", "host=h user=u password=pw dbname=d", "postgres://u@h:5432/d"},
		{"Env", "postgres:env:DSN", "postgres", env("DSN"), "postgres://envuser@db.internal:5433/mcp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			loc, err := parseStoreLocation(c.in, env)
			if err != nil {
				t.Fatal(err)
			}
			if loc.backend != c.backend || loc.dsn != c.dsn || loc.display != c.display {
				t.Fatalf("got %+v, want backend %s dsn %s display %s", loc, c.backend, c.dsn, c.display)
			}
		})
	}
}

// TestServerRefusesHalfCopiedStore: the app does not provision on a bbolt
// file a migrate-store copy marked and never finished, and says why.
func TestServerRefusesHalfCopiedStore(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "mcpauth.db")
	s, err := bboltstore.Open(dbPath, bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.BeginImport(t.Context()); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	a := &App{App: config.App{Issuer: testIssuer, Storage: StorageConfig{Path: dbPath}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err = a.Provision(ctx)
	defer a.Cleanup()
	if !errors.Is(err, storage.ErrIncompleteCopy) {
		t.Fatalf("Provision on a half-copied store: %v, want ErrIncompleteCopy", err)
	}
	for _, want := range []string{"refusing to start", "unfinished 'mcpauth migrate-store' copy", "delete the file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
