package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "mcpauth",
		Usage: "clients|users|audit|keys|backup|migrate-store|version|doctor ...",
		Short: "Operates the mcp_auth app of a running server (clients, users, audit, keys)",
		Long: `
Operates the mcp_auth app of a running caddy-mcpauth through its admin API
(the bbolt store is locked by the running process, so these commands never
open it themselves; only migrate-store and backup --db do, offline).

  mcpauth clients list|show <id>|disable <id>|enable <id>|revoke <id>
  mcpauth users add <email> [--name N] [--password-stdin]
  mcpauth users list|disable <id>|enable <id>|set-password <id>|revoke-sessions <id>
  mcpauth audit tail [--limit N] [--type T] [--client-id ID] [--since 24h]
  mcpauth keys list|rotate
  mcpauth backup <file>           (a consistent copy of the live bbolt store)
  mcpauth version                 (the plugin's version and VCS revision)
  mcpauth doctor <mcp-url>        (replays each major client's discovery and
                                  sign-in preflight against a site; no admin API)
  mcpauth migrate-store --from bbolt:<path> --to postgres:env:<VAR>
                                  (offline: stop the server first; also postgres -> bbolt)

A user may be named by id or email. Passwords are read from --password-stdin,
else the MCPAUTH_PASSWORD environment variable, else prompted on the
terminal; never from the command line.

The admin address is --address, else CADDY_ADMIN, else localhost:2019 (as
for 'caddy reload'). --json prints the API's JSON instead of a table.
`,
		CobraFunc: setupMCPAuthCommand,
	})
}

// cliEnv is what the commands read and write (swappable in tests).
type cliEnv struct {
	stdin  io.Reader
	stdout io.Writer
	getenv func(string) string
	// isTerminal reports whether stdin is a terminal we may prompt on.
	isTerminal func() bool
	readSecret func() ([]byte, error)
}

func defaultCLIEnv() *cliEnv {
	return &cliEnv{
		stdin:      os.Stdin,
		stdout:     os.Stdout,
		getenv:     os.Getenv,
		isTerminal: func() bool { return term.IsTerminal(int(os.Stdin.Fd())) },
		readSecret: func() ([]byte, error) { return term.ReadPassword(int(os.Stdin.Fd())) },
	}
}

// cliOpts are the flags shared by every subcommand.
type cliOpts struct {
	address string
	json    bool
	env     *cliEnv
}

func setupMCPAuthCommand(cmd *cobra.Command) {
	setupMCPAuthCommandWith(cmd, defaultCLIEnv())
}

func setupMCPAuthCommandWith(cmd *cobra.Command, env *cliEnv) {
	o := &cliOpts{env: env}
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
	cmd.AddCommand(clients, users, audit, keys, newBackupCommand(o), NewMigrateStoreCommand(), newVersionCommand(o), newDoctorCommand(o))
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

// password reads a new password: stdin (first line) with --password-stdin,
// else MCPAUTH_PASSWORD, else a terminal prompt (twice).
func (o *cliOpts) password(fromStdin bool) (string, error) {
	env := o.env
	if fromStdin {
		line, err := bufio.NewReader(env.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("mcpauth: reading the password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("mcpauth: empty password on stdin")
		}
		return pw, nil
	}
	if pw := env.getenv("MCPAUTH_PASSWORD"); pw != "" {
		return pw, nil
	}
	if !env.isTerminal() {
		return "", errors.New("mcpauth: no password: use --password-stdin or MCPAUTH_PASSWORD (stdin is not a terminal)")
	}
	fmt.Fprint(os.Stderr, "New password: ")
	a, err := env.readSecret()
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("mcpauth: reading the password: %w", err)
	}
	fmt.Fprint(os.Stderr, "Repeat it: ")
	b, err := env.readSecret()
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("mcpauth: reading the password: %w", err)
	}
	if !bytes.Equal(a, b) {
		return "", errors.New("mcpauth: the passwords differ")
	}
	if len(a) == 0 {
		return "", errors.New("mcpauth: empty password")
	}
	return string(a), nil
}

// userID accepts an account id or an email (looked up in the user list).
func (o *cliOpts) userID(ctx context.Context, arg string) (string, error) {
	if !strings.Contains(arg, "@") {
		return arg, nil
	}
	body, err := o.call(ctx, http.MethodGet, "users", nil)
	if err != nil {
		return "", err
	}
	var us []userView
	if err := json.Unmarshal(body, &us); err != nil {
		return "", fmt.Errorf("mcpauth: decoding the user list: %w", err)
	}
	for _, u := range us {
		if strings.EqualFold(u.Email, arg) {
			return u.ID, nil
		}
	}
	return "", fmt.Errorf("mcpauth: no user with email %s", arg)
}

type cliPrinter func(w io.Writer, body []byte) error

func (o *cliOpts) get(ctx context.Context, path string, p cliPrinter) error {
	body, err := o.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	return o.print(body, p)
}

func (o *cliOpts) post(ctx context.Context, path string, in any, p cliPrinter) error {
	var r io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	body, err := o.call(ctx, http.MethodPost, path, r)
	if err != nil {
		return err
	}
	return o.print(body, p)
}

func (o *cliOpts) print(body []byte, p cliPrinter) error {
	if o.json {
		_, err := o.env.stdout.Write(body)
		return err
	}
	return p(o.env.stdout, body)
}

// adminAddress is --address, else CADDY_ADMIN, else localhost:2019.
func (o *cliOpts) adminAddress() string {
	if o.address != "" {
		return o.address
	}
	if a := o.env.getenv("CADDY_ADMIN"); a != "" {
		return a
	}
	return caddy.DefaultAdminListen
}

// call sends one request to the admin API and returns the body of a 2xx
// answer; otherwise the API's error message.
func (o *cliOpts) call(ctx context.Context, method, path string, body io.Reader) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := o.request(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, o.apiError(resp)
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("mcpauth: reading the answer: %w", err)
	}
	return out, nil
}

// request sends one request to the admin API (bounded by ctx) and returns
// the response of any status; the caller closes its body.
func (o *cliOpts) request(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	addr := o.adminAddress()
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("mcpauth: invalid admin address %q", addr)
	}
	origin := "http://" + na.JoinHostPort(0)
	dialAddr := na.JoinHostPort(0)
	if na.IsUnixNetwork() {
		origin = "http://127.0.0.1"
		dialAddr = strings.SplitN(na.Host, "|", 2)[0] // drop socket permission bits
	}
	req, err := http.NewRequestWithContext(ctx, method, origin+adminPrefix+path, body)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: invalid admin address %q: %w", addr, err)
	}
	if !na.IsUnixNetwork() {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, na.Network, dialAddr)
		},
	}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: cannot reach the admin API at %s (is caddy-mcpauth running? set --address or CADDY_ADMIN): %w", addr, err)
	}
	return resp, nil
}

// apiError is the error of a non-2xx admin API answer.
func (o *cliOpts) apiError(resp *http.Response) error {
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(out, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("mcpauth: the server at %s has no mcp_auth admin API (HTTP 404): is it caddy-mcpauth?", o.adminAddress())
	}
	return fmt.Errorf("mcpauth: admin API answered HTTP %d", resp.StatusCode)
}

// --- tables ---

func cliTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func cliTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func cliDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cliYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printClients(w io.Writer, body []byte) error {
	var cs []clientView
	if err := json.Unmarshal(body, &cs); err != nil {
		return fmt.Errorf("mcpauth: decoding clients: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "ID\tKIND\tNAME\tDISABLED\tCREATED\tLAST USED")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Kind, cliDash(c.Name), cliYesNo(c.Disabled), cliTime(c.CreatedAt), cliTime(c.LastUsedAt))
	}
	return tw.Flush()
}

func printClient(w io.Writer, body []byte) error {
	var c clientView
	if err := json.Unmarshal(body, &c); err != nil {
		return fmt.Errorf("mcpauth: decoding client: %w", err)
	}
	tw := cliTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", c.ID)
	row("Kind", c.Kind)
	row("Name", cliDash(c.Name))
	row("Disabled", cliYesNo(c.Disabled))
	row("Redirect URIs", cliDash(strings.Join(c.RedirectURIs, " ")))
	row("Scopes", cliDash(strings.Join(c.Scopes, " ")))
	row("Auth method", cliDash(c.TokenEndpointAuthMethod))
	row("Skip consent", cliYesNo(c.SkipConsent))
	if c.RegisteredFrom != "" {
		row("Registered from", c.RegisteredFrom)
	}
	row("Created", cliTime(c.CreatedAt))
	row("Last used", cliTime(c.LastUsedAt))
	if c.ActiveGrants != nil {
		row("Active grants", strconv.Itoa(*c.ActiveGrants))
	}
	return tw.Flush()
}

func printUsers(w io.Writer, body []byte) error {
	var us []userView
	if err := json.Unmarshal(body, &us); err != nil {
		return fmt.Errorf("mcpauth: decoding users: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tDISABLED\tPASSWORD\tCREATED")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Email, cliDash(u.Name), cliYesNo(u.Disabled), cliYesNo(u.HasPassword), cliTime(u.CreatedAt))
	}
	return tw.Flush()
}

func printUser(w io.Writer, body []byte) error {
	var u userView
	if err := json.Unmarshal(body, &u); err != nil {
		return fmt.Errorf("mcpauth: decoding user: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME")
	fmt.Fprintf(tw, "%s\t%s\t%s\n", u.ID, u.Email, cliDash(u.Name))
	return tw.Flush()
}

// printResult prints an action's counters as KEY VALUE lines.
func printResult(w io.Writer, body []byte) error {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("mcpauth: decoding the answer: %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tw := cliTable(w)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%v\n", k, m[k])
	}
	return tw.Flush()
}

func printAudit(w io.Writer, body []byte) error {
	var evs []struct {
		Time     time.Time         `json:"time"`
		Type     string            `json:"type"`
		Outcome  string            `json:"outcome"`
		Subject  string            `json:"sub"`
		ClientID string            `json:"client_id"`
		IP       string            `json:"ip"`
		Detail   map[string]string `json:"detail"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		return fmt.Errorf("mcpauth: decoding audit events: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "TIME\tTYPE\tOUTCOME\tSUBJECT\tCLIENT\tIP\tDETAIL")
	// Oldest first, like tail.
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		keys := make([]string, 0, len(e.Detail))
		for k := range e.Detail {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var d []string
		for _, k := range keys {
			d = append(d, k+"="+e.Detail[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cliTime(e.Time), e.Type, cliDash(e.Outcome), cliDash(e.Subject), cliDash(e.ClientID), cliDash(e.IP), cliDash(strings.Join(d, " ")))
	}
	return tw.Flush()
}

func printKeys(w io.Writer, body []byte) error {
	var ks []keyView
	if err := json.Unmarshal(body, &ks); err != nil {
		return fmt.Errorf("mcpauth: decoding keys: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "KID\tALG\tACTIVE\tCREATED\tACTIVATES\tRETIRED\tPUBLISHED UNTIL")
	for _, k := range ks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, cliYesNo(k.Active), cliTime(k.CreatedAt), cliTime(k.ActivatesAt), cliTime(k.RetiredAt), cliTime(k.PublishUntil))
	}
	return tw.Flush()
}
