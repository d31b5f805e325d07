package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestBackupRestore: `mcpauth backup` copies the live bbolt store through
// the admin API while the server keeps issuing tokens; a fresh instance
// started on the copy (same Caddyfile, the copy at the storage path) has
// the accounts, the signing keys (an access token from before verifies) and
// the grants (the refresh token works), and nothing written after the copy.
// `--db` refuses a file held by a server and copies it once stopped.
func TestBackupRestore(t *testing.T) {
	s := startStack(t, stackOpts{})
	const bobEmail, bobPassword = "bob@example.com", "bobs-first-long-passphrase"
	if out, err := opsCLI(t, s, bobPassword+"\n", nil, "users", "add", bobEmail, "--password-stdin"); err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}
	tok := s.login(t, s.oauthConfig("todo:read", "offline_access"))
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}

	// Back up while the server writes (logins run concurrently).
	var wg sync.WaitGroup
	var during atomic.Int32
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if mcpStatus(t, s, tok.AccessToken) == 200 {
				during.Add(1)
			}
		}
	}()
	backup := filepath.Join(t.TempDir(), "copy.db")
	out, err := opsCLI(t, s, "", nil, "backup", backup)
	close(stop)
	wg.Wait()
	if err != nil || !strings.Contains(out, "Wrote "+backup) {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if during.Load() == 0 {
		t.Fatal("the server answered no request during the backup")
	}
	fi, err := os.Stat(backup)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", err, fi)
	}
	if !strings.Contains(auditShows(t, s, "store.backup"), "store.backup") {
		t.Fatal("no store.backup audit event")
	}

	// Written after the copy: must not be in the restored store.
	if out, err := opsCLI(t, s, "late-user-passphrase\n", nil, "users", "add", "late@example.com", "--password-stdin"); err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}

	// --db on a file a server holds is refused (bbolt's lock).
	live := filepath.Join(s.dir, "mcpauth.db")
	if out, err := opsCLI(t, s, "", nil, "backup", filepath.Join(t.TempDir(), "x.db"), "--db", live); err == nil || !strings.Contains(err.Error(), "held by a running server") {
		t.Fatalf("backup --db of a live file: %v\n%s", err, out)
	}

	// Restore: stop, put the copy where the Caddyfile points, start fresh.
	s.caddy.stop()
	if err := os.Rename(live, live+".old"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(live, data, 0o600); err != nil {
		t.Fatal(err)
	}
	restored := *s.caddy
	restored.proc = startProc(t, "caddy (restored)", s.caddy.env, caddyBin, "run", "--config", s.caddy.caddyfile, "--adapter", "caddyfile")
	s.caddy = &restored
	restored.waitAdmin(t)
	waitHTTP(t, s.Client, s.Issuer+"/.well-known/oauth-authorization-server")

	users := opsMustCLI(t, s, "users", "list")
	if !strings.Contains(users, bobEmail) || !strings.Contains(users, aliceEmail) || strings.Contains(users, "late@example.com") {
		t.Fatalf("restored users:\n%s", users)
	}
	if st := mcpStatus(t, s, tok.AccessToken); st != 200 {
		t.Fatalf("access token from before the backup on the restored instance: %d", st)
	}
	if st, code, _ := opsRefresh(t, s, tok.RefreshToken); st != 200 {
		t.Fatalf("refresh on the restored instance: %d %s", st, code)
	}

	// Offline: --db copies the file once no server holds it.
	s.caddy.stop()
	offline := filepath.Join(t.TempDir(), "offline.db")
	if out, err := opsCLI(t, s, "", nil, "backup", offline, "--db", live); err != nil || !strings.Contains(out, "Wrote "+offline) {
		t.Fatalf("backup --db of a stopped server's file: %v\n%s", err, out)
	}
}
