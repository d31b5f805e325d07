package opscli

import (
	"io"
	"net/url"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mcpauth/caddy-mcpauth/internal/version"
)

// Config is what the commands need from the server they operate and
// cannot know without Caddy. Every field but Env is required.
type Config struct {
	// DefaultAdmin is the admin address without --address and CADDY_ADMIN
	// (Caddy's default, localhost:2019).
	DefaultAdmin string
	// APIPrefix is where the mcp_auth routes live on the admin endpoint
	// ("/mcp_auth/").
	APIPrefix string
	// ResolveAdmin turns an admin address (Caddy's network address
	// syntax: host:port, unix//path, ...) into where to dial.
	ResolveAdmin func(addr string) (AdminEndpoint, error)
	// Version reports the binary's plugin version (mcpauth version).
	Version func() version.Info
	// Env is what the commands read and write; nil fields are the
	// process's own.
	Env Env
}

// AdminEndpoint is where the admin API listens.
type AdminEndpoint struct {
	// Network and Address are net.Dial's arguments.
	Network, Address string
	// Unix reports a unix socket: requests then carry no Origin header
	// (Caddy checks Origin only on TCP listeners).
	Unix bool
}

// Env is what the commands read and write (swappable in tests).
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Getenv func(string) string
	// IsTerminal reports whether stdin is a terminal we may prompt on.
	IsTerminal func() bool
	ReadSecret func() ([]byte, error)
}

// withDefaults fills the nil fields with the process's stdin, stdout,
// environment and terminal.
func (e Env) withDefaults() *Env {
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	if e.IsTerminal == nil {
		e.IsTerminal = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }
	}
	if e.ReadSecret == nil {
		e.ReadSecret = func() ([]byte, error) { return term.ReadPassword(int(os.Stdin.Fd())) }
	}
	return &e
}

// cliOpts are the flags shared by every subcommand, and the config.
type cliOpts struct {
	address string
	json    bool
	cfg     Config
	env     *Env
}

// Setup adds the mcpauth subcommands and flags to cmd (the command Caddy
// registers; its name, usage and help text are the adapter's).
func Setup(cmd *cobra.Command, cfg Config) {
	o := &cliOpts{cfg: cfg, env: cfg.Env.withDefaults()}
	cmd.PersistentFlags().StringVar(&o.address, "address", "", "The admin API address (default: CADDY_ADMIN, else localhost:2019)")
	cmd.PersistentFlags().BoolVar(&o.json, "json", false, "Print raw JSON instead of a table")
	cmd.SilenceUsage = true

	clients := &cobra.Command{Use: "clients", Short: "List, show, disable, enable or revoke OAuth clients"}
	clients.AddCommand(
		&cobra.Command{Use: "list", Short: "List clients", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
			return o.get(c.Context(), "clients", printClients)
		}},
		&cobra.Command{Use: "show <id>", Short: "Show one client", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, a []string) error {
			return o.get(c.Context(), "clients/"+url.PathEscape(a[0]), printClient)
		}},
		clientAction(o, "disable", "Refuse a client at /authorize, /token and the guard"),
		clientAction(o, "enable", "Enable a disabled client"),
		clientAction(o, "revoke", "End every grant and token of a client now"),
	)

	users := &cobra.Command{Use: "users", Short: "Add, list, disable or set the password of local accounts"}
	var name string
	var pwStdin bool
	add := &cobra.Command{Use: "add <email>", Short: "Create a password account", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, a []string) error {
		pw, err := o.password(pwStdin)
		if err != nil {
			return err
		}
		body := map[string]string{"email": a[0], "name": name, "password": pw}
		return o.post(c.Context(), "users", body, printUser)
	}}
	add.Flags().StringVar(&name, "name", "", "Display name")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "Read the password from the first line of standard input")
	var setStdin bool
	setPW := &cobra.Command{Use: "set-password <id|email>", Short: "Set a password and end the user's sessions and tokens", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, a []string) error {
		id, err := o.userID(c.Context(), a[0])
		if err != nil {
			return err
		}
		pw, err := o.password(setStdin)
		if err != nil {
			return err
		}
		return o.post(c.Context(), "users/"+url.PathEscape(id)+"/password", map[string]string{"password": pw}, printResult)
	}}
	setPW.Flags().BoolVar(&setStdin, "password-stdin", false, "Read the password from the first line of standard input")
	users.AddCommand(
		add,
		&cobra.Command{Use: "list", Short: "List accounts", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
			return o.get(c.Context(), "users", printUsers)
		}},
		userAction(o, "disable", "disable", "Disable an account and end its sessions and tokens"),
		userAction(o, "enable", "enable", "Enable a disabled account"),
		userAction(o, "revoke-sessions", "revoke-sessions", "End an account's browser sessions and tokens"),
		setPW,
	)

	audit := &cobra.Command{Use: "audit", Short: "Read the audit log"}
	var limit int
	var typ, clientID, since string
	tail := &cobra.Command{Use: "tail", Short: "Show the newest audit events", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		q := url.Values{}
		q.Set("limit", strconv.Itoa(limit))
		if typ != "" {
			q.Set("type", typ)
		}
		if clientID != "" {
			q.Set("client_id", clientID)
		}
		if since != "" {
			q.Set("since", since)
		}
		return o.get(c.Context(), "audit?"+q.Encode(), printAudit)
	}}
	tail.Flags().IntVar(&limit, "limit", 50, "How many events (1-1000)")
	tail.Flags().StringVar(&typ, "type", "", "Only this event type (a prefix when it ends in '.', e.g. client.)")
	tail.Flags().StringVar(&clientID, "client-id", "", "Only events of this client")
	tail.Flags().StringVar(&since, "since", "", "Only events since this RFC 3339 time or duration ago (24h)")
	audit.AddCommand(tail)

	keys := &cobra.Command{Use: "keys", Short: "List or rotate the signing keys"}
	keys.AddCommand(
		&cobra.Command{Use: "list", Short: "List signing keys (never their private parts)", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
			return o.get(c.Context(), "keys", printKeys)
		}},
		rotateKeysCommand(o),
	)
	cmd.AddCommand(clients, users, audit, keys, newBackupCommand(o), newMigrateStoreCommand(), newVersionCommand(o), newDoctorCommand(o))
}

// rotateKeysCommand is `mcpauth keys rotate [--now]`.
func rotateKeysCommand(o *cliOpts) *cobra.Command {
	var now bool
	cmd := &cobra.Command{Use: "rotate", Short: "Add a new signing key: published at once, signing after the pre-publication window (key_prepublish)", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		path := "keys/rotate"
		if now {
			path += "?now=true"
		}
		return o.post(c.Context(), path, nil, printKeys)
	}}
	cmd.Flags().BoolVar(&now, "now", false, "Sign with the new key at once (disruptive: verifiers that have not refetched the JWKS refuse its tokens for a while; for a compromised key)")
	return cmd
}

func clientAction(o *cliOpts, action, short string) *cobra.Command {
	return &cobra.Command{Use: action + " <id>", Short: short, Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, a []string) error {
		p := printClient
		if action == "revoke" {
			p = printResult
		}
		return o.post(c.Context(), "clients/"+url.PathEscape(a[0])+"/"+action, nil, p)
	}}
}

func userAction(o *cliOpts, use, action, short string) *cobra.Command {
	return &cobra.Command{Use: use + " <id|email>", Short: short, Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, a []string) error {
		id, err := o.userID(c.Context(), a[0])
		if err != nil {
			return err
		}
		return o.post(c.Context(), "users/"+url.PathEscape(id)+"/"+action, nil, printResult)
	}}
}
