package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mcpauth/caddy-mcpauth/internal/opscli"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// runCLI runs `mcpauth <args>` in-process, configured as the registered
// command is, with the given stdin and environment, and returns its
// standard output.
func runCLI(t *testing.T, stdin string, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := &cobra.Command{Use: "mcpauth"}
	opscli.Setup(root, cliConfig(opscli.Env{
		Stdin:      strings.NewReader(stdin),
		Stdout:     &out,
		Getenv:     func(k string) string { return env[k] },
		IsTerminal: func() bool { return false },
		ReadSecret: func() ([]byte, error) { return nil, errors.New("no terminal") },
	}))
	root.SetArgs(args)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestCLIAgainstAdminAPI(t *testing.T) {
	app := newTestApp(t)
	srv := adminServer(t, newAdmin(app))
	addr := srv.Listener.Addr().String()
	ctx := context.Background()
	cli := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		out, err := runCLI(t, stdin, nil, append(args, "--address", addr)...)
		if err != nil {
			t.Fatalf("mcpauth %v: %v", args, err)
		}
		return out
	}

	t.Run("clients list is a table", func(t *testing.T) {
		out := cli(t, "", "clients", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], "cli-app ") {
			t.Fatalf("table:\n%s", out)
		}
		// Aligned: every row's second column starts where the header's does.
		col := strings.Index(lines[0], "KIND")
		for _, l := range lines[1:] {
			if l[col-1] != ' ' || l[col] == ' ' {
				t.Fatalf("columns not aligned:\n%s", out)
			}
		}
	})
	t.Run("clients list --json", func(t *testing.T) {
		out := cli(t, "", "clients", "list", "--json")
		var cs []map[string]any
		if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 2 {
			t.Fatalf("json: %v\n%s", err, out)
		}
		if secretsIn(out) != "" {
			t.Fatalf("leak: %s", out)
		}
	})
	t.Run("clients disable, show, enable, revoke", func(t *testing.T) {
		addGrant(t, app, "gc", "cli-app", aliceID(t, app))
		cli(t, "", "clients", "disable", "cli-app")
		if c, _ := app.store.GetClient(ctx, "cli-app"); !c.Disabled {
			t.Fatal("not disabled")
		}
		out := cli(t, "", "clients", "show", "cli-app")
		if !strings.Contains(out, "Disabled") || !strings.Contains(out, "yes") || !strings.Contains(out, "Active grants") {
			t.Fatalf("show:\n%s", out)
		}
		cli(t, "", "clients", "enable", "cli-app")
		if c, _ := app.store.GetClient(ctx, "cli-app"); c.Disabled {
			t.Fatal("still disabled")
		}
		out = cli(t, "", "clients", "revoke", "cli-app")
		if !strings.Contains(out, "grants_revoked") || !strings.Contains(out, "1") {
			t.Fatalf("revoke:\n%s", out)
		}
	})
	t.Run("users add from stdin, list, set-password by email, disable", func(t *testing.T) {
		out := cli(t, "a-long-enough-passphrase\n", "users", "add", "carol@example.com", "--name", "Carol", "--password-stdin")
		if !strings.Contains(out, "carol@example.com") {
			t.Fatalf("add:\n%s", out)
		}
		acct, err := app.store.GetAccountByEmail(ctx, "carol@example.com")
		if err != nil || acct.Name != "Carol" {
			t.Fatalf("account: %+v %v", acct, err)
		}
		out = cli(t, "", "users", "list")
		if !strings.Contains(out, "carol@example.com") || !strings.Contains(out, testEmail) || secretsIn(out) != "" {
			t.Fatalf("list:\n%s", out)
		}
		addGrant(t, app, "gcarol", "cli-app", acct.ID)
		out, err = runCLI(t, "", map[string]string{"MCPAUTH_PASSWORD": "yet-another-passphrase"}, "users", "set-password", "carol@example.com", "--address", addr)
		if err != nil || !strings.Contains(out, "grants_revoked") {
			t.Fatalf("set-password: %v\n%s", err, out)
		}
		// Requirement 41: the password change ended carol's grant.
		if g, err := app.store.GetGrant(ctx, "gcarol"); err != nil || !g.Revoked() || g.RevokedReason != "password_changed" {
			t.Fatalf("grant after set-password: %+v %v", g, err)
		}
		if a, _ := app.store.GetAccount(ctx, acct.ID); a.PasswordHash == acct.PasswordHash {
			t.Fatal("password unchanged")
		}
		cli(t, "", "users", "disable", acct.ID)
		if a, _ := app.store.GetAccount(ctx, acct.ID); !a.Disabled {
			t.Fatal("not disabled")
		}
	})
	t.Run("audit tail", func(t *testing.T) {
		out := cli(t, "", "audit", "tail", "--limit", "5", "--type", "account.")
		if !strings.HasPrefix(out, "TIME ") || !strings.Contains(out, "account.created") || !strings.Contains(out, "by=operator") {
			t.Fatalf("audit:\n%s", out)
		}
		out = cli(t, "", "audit", "tail", "--type", "client.disabled", "--client-id", "cli-app", "--json")
		var evs []storage.AuditEvent
		if err := json.Unmarshal([]byte(out), &evs); err != nil || len(evs) != 1 {
			t.Fatalf("audit json: %v\n%s", err, out)
		}
	})
	t.Run("keys rotate and list", func(t *testing.T) {
		out := cli(t, "", "keys", "rotate")
		if n := strings.Count(out, "ES256"); n != 2 {
			t.Fatalf("rotate:\n%s", out)
		}
		out = cli(t, "", "keys", "list")
		if strings.Count(out, "yes") != 1 || secretsIn(out) != "" {
			t.Fatalf("list:\n%s", out)
		}
	})

	refusals := []struct {
		name  string
		stdin string
		env   map[string]string
		args  []string
		want  string
	}{
		{"unknown client", "", nil, []string{"clients", "show", "nope"}, "client not found (HTTP 404)"},
		{"unknown email", "", nil, []string{"users", "disable", "nobody@example.com"}, "no user with email"},
		{"no password source", "", nil, []string{"users", "add", "dave@example.com"}, "--password-stdin or MCPAUTH_PASSWORD"},
		{"empty stdin password", "\n", nil, []string{"users", "add", "dave@example.com", "--password-stdin"}, "empty password"},
		{"weak password", "short\n", nil, []string{"users", "add", "dave@example.com", "--password-stdin"}, "at least 8 characters (HTTP 400)"},
		{"bad limit", "", nil, []string{"audit", "tail", "--limit", "0"}, "limit must be"},
		{"missing argument", "", nil, []string{"clients", "show"}, "accepts 1 arg"},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			_, err := runCLI(t, c.stdin, c.env, append(c.args, "--address", addr)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if _, err := app.store.GetAccountByEmail(ctx, "dave@example.com"); err == nil {
				t.Fatal("a refused command created an account")
			}
		})
	}
}

func TestCLIUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = runCLI(t, "", nil, "clients", "list", "--address", addr)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the admin API at "+addr) {
		t.Fatalf("error: %v", err)
	}
	// CADDY_ADMIN is honoured when --address is absent.
	_, err = runCLI(t, "", map[string]string{"CADDY_ADMIN": addr}, "keys", "list")
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("CADDY_ADMIN not used: %v", err)
	}
	_, err = runCLI(t, "", nil, "keys", "list", "--address", "tcp/::not an address::")
	if err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("bad address: %v", err)
	}
}

// TestAdminEndpoint: the CLI dials the admin address as Caddy's admin
// listener reads it: a unix socket without its permission bits (and no
// Origin), one TCP port, never a range.
func TestAdminEndpoint(t *testing.T) {
	for _, c := range []struct {
		addr string
		want opscli.AdminEndpoint
		err  bool
	}{
		{addr: "localhost:2019", want: opscli.AdminEndpoint{Network: "tcp", Address: "localhost:2019"}},
		{addr: "tcp/[::1]:2019", want: opscli.AdminEndpoint{Network: "tcp", Address: "[::1]:2019"}},
		{addr: "unix//run/caddy/admin.sock|0220", want: opscli.AdminEndpoint{Network: "unix", Address: "/run/caddy/admin.sock", Unix: true}},
		{addr: "localhost:2019-2020", err: true},
		{addr: "localhost:http", err: true},
	} {
		got, err := adminEndpoint(c.addr)
		if c.err {
			if err == nil {
				t.Errorf("%s: %+v, want an error", c.addr, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.addr, got, err, c.want)
		}
	}
}
