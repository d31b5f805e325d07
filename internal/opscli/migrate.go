package opscli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
	"github.com/mcpauth/caddy-mcpauth/storage/pgstore"
)

// newMigrateStoreCommand returns the `migrate-store` subcommand of
// `caddy-mcpauth mcpauth`: it copies every record of one store into another,
// empty one (bbolt -> postgres to move an installation onto a shared
// database, postgres -> bbolt back), verifies the copy and prints a
// summary.
func newMigrateStoreCommand() *cobra.Command {
	var (
		from, to    string
		lockTimeout time.Duration
		batch       int
	)
	cmd := &cobra.Command{
		Use:   "migrate-store --from <store> --to <store>",
		Short: "Copy the authorization server's store to another backend (bbolt <-> postgres)",
		Long: strings.TrimSpace(`
Copies every record of the mcp_auth store (clients, signing keys, accounts and
their upstream identities, consents, grants with every refresh token of their
families, authorization codes, sessions, tickets, audit log) into an EMPTY
destination store, then reads the destination back and checks the count and
content digest of every kind. The copy streams from one consistent read of
the source in batches of --batch records, each written in a transaction of
its own, so memory holds one batch however large the store. The destination
is marked incomplete until the last batch and the check passed: no server
starts on it meanwhile.

A store is written as:
  bbolt:/var/lib/caddy/mcpauth/mcpauth.db
  postgres:postgres://mcpauth@db.internal/mcpauth?sslmode=verify-full
  postgres:env:MCPAUTH_DSN    (the DSN is read from that environment variable,
                               so that no password appears on the command line)

Stop every Caddy server using the source first: a bbolt file is locked by
the server that has it open (the command gives up after --lock-timeout), and
records written to a PostgreSQL source during the copy would not be copied.
A destination that already holds records is refused and left untouched. A
failed or interrupted copy leaves the destination marked incomplete (a new
bbolt file this run created is removed): servers refuse to start on it.
Drop it (delete the bbolt file; on PostgreSQL drop the schema, or the
mcpauth_* tables) and run the command again. Then point the mcp_auth app at the destination
('storage postgres {env.MCPAUTH_DSN}') and start the servers.

The copy contains signing keys, password hashes and client secret hashes:
protect the destination as you protect the source (a new bbolt file is
created with mode 0600).`),
		Example: "  caddy-mcpauth mcpauth migrate-store --from bbolt:/var/lib/caddy/mcpauth/mcpauth.db --to postgres:env:MCPAUTH_DSN",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			_, err := MigrateStore(ctx, MigrateOptions{
				From: from, To: to, LockTimeout: lockTimeout, BatchSize: batch, Out: cmd.OutOrStdout(),
			})
			return err
		},
	}
	cmd.SilenceUsage = true
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source store: bbolt:<path> or postgres:<dsn> or postgres:env:<VAR>")
	f.StringVar(&to, "to", "", "destination store (must be empty): bbolt:<path> or postgres:<dsn> or postgres:env:<VAR>")
	f.DurationVar(&lockTimeout, "lock-timeout", 3*time.Second, "how long to wait for a bbolt file held by a running server")
	f.IntVar(&batch, "batch", storage.DefaultCopyBatch, "records per destination transaction (memory holds one batch)")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// MigrateOptions configure MigrateStore.
type MigrateOptions struct {
	// From and To are store locations: "bbolt:<path>", "postgres:<dsn>" or
	// "postgres:env:<VAR>".
	From, To string
	// LockTimeout bounds the wait for a bbolt file lock (0: 3s).
	LockTimeout time.Duration
	// BatchSize is the records per destination transaction (0:
	// storage.DefaultCopyBatch).
	BatchSize int
	// Out receives the summary table (nil: discarded).
	Out io.Writer
	// Getenv resolves postgres:env:<VAR> (nil: os.Getenv).
	Getenv func(string) string
	// Logger receives the stores' operational messages (nil: discarded).
	Logger *slog.Logger
}

// MigrationSummary is what MigrateStore copied: records per kind, as read
// from the source and as read back from the destination.
type MigrationSummary struct {
	Source      map[string]int
	Destination map[string]int
}

// storeLocation is a parsed --from/--to value.
type storeLocation struct {
	backend string // "bbolt" or "postgres"
	path    string // bbolt
	dsn     string // postgres (secret: never printed)
	display string // printable form
}

// parseStoreLocation parses "bbolt:<path>", "postgres:<dsn>" and
// "postgres:env:<VAR>" (a bare postgres:// or postgresql:// URL is taken as
// the DSN itself).
func parseStoreLocation(s string, getenv func(string) string) (storeLocation, error) {
	backend, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		// The value is not echoed: it may be a DSN with a password.
		return storeLocation{}, errors.New("mcpauth migrate-store: a store is bbolt:<path>, postgres:<dsn> or postgres:env:<VAR>")
	}
	switch backend {
	case "bbolt":
		p, err := filepath.Abs(rest)
		if err != nil {
			return storeLocation{}, fmt.Errorf("mcpauth migrate-store: bbolt path: %w", err)
		}
		return storeLocation{backend: "bbolt", path: p, display: "bbolt:" + p}, nil
	case "postgres", "postgresql":
		dsn := rest
		if strings.HasPrefix(rest, "//") {
			dsn = s // a bare postgres:// URL
		}
		if name, ok := strings.CutPrefix(rest, "env:"); ok {
			if name == "" {
				return storeLocation{}, errors.New("mcpauth migrate-store: postgres:env: needs a variable name")
			}
			dsn = getenv(name)
			if dsn == "" {
				return storeLocation{}, fmt.Errorf("mcpauth migrate-store: environment variable %s is empty or unset", name)
			}
		}
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			// pgconn redacts the password in its parse errors.
			return storeLocation{}, fmt.Errorf("mcpauth migrate-store: postgres DSN: %w", err)
		}
		display := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
		if sp := cfg.RuntimeParams["search_path"]; sp != "" {
			display += " (search_path " + sp + ")"
		}
		return storeLocation{backend: "postgres", dsn: dsn, display: display}, nil
	}
	if len(backend) > 32 {
		backend = backend[:32] + "..."
	}
	return storeLocation{}, fmt.Errorf("mcpauth migrate-store: unknown store backend %q (bbolt or postgres)", backend)
}

// openStore opens a location. A bbolt source must exist (Open would
// otherwise create an empty file and copy nothing); created reports a
// destination file this call created.
func openStore(ctx context.Context, loc storeLocation, source bool, lockTimeout time.Duration, log *slog.Logger) (b storage.Backend, created bool, err error) {
	switch loc.backend {
	case "bbolt":
		_, statErr := os.Stat(loc.path)
		switch {
		case statErr == nil:
		case errors.Is(statErr, fs.ErrNotExist) && source:
			return nil, false, fmt.Errorf("mcpauth migrate-store: source %s does not exist", loc.path)
		case errors.Is(statErr, fs.ErrNotExist):
			created = true
		default:
			return nil, false, fmt.Errorf("mcpauth migrate-store: %w", statErr)
		}
		s, err := bboltstore.Open(loc.path, bboltstore.Options{Timeout: lockTimeout, Logger: log})
		if errors.Is(err, storage.ErrIncompleteCopy) {
			return nil, false, fmt.Errorf("mcpauth migrate-store: %s holds an unfinished copy of an earlier run: delete the file and run again: %w", loc.display, err)
		}
		if err != nil {
			return nil, false, fmt.Errorf("mcpauth migrate-store: %s (stop the Caddy server using it first): %w", loc.display, err)
		}
		return s, created, nil
	default:
		octx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		s, err := pgstore.Open(octx, pgstore.Config{DSN: loc.dsn, MaxConns: 4, Logger: log})
		if err != nil {
			return nil, false, fmt.Errorf("mcpauth migrate-store: %s: %w", loc.display, err)
		}
		return s, false, nil
	}
}

// MigrateStore copies every record of opts.From into the empty store
// opts.To, then reads the destination back and compares the number and
// the content digest of the records of every kind. It prints a summary
// table to opts.Out.
func MigrateStore(ctx context.Context, opts MigrateOptions) (MigrationSummary, error) {
	var sum MigrationSummary
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 3 * time.Second
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.BatchSize < 0 {
		return sum, errors.New("mcpauth migrate-store: --batch must be positive")
	}
	if opts.From == "" || opts.To == "" {
		return sum, errors.New("mcpauth migrate-store: --from and --to are required")
	}
	from, err := parseStoreLocation(opts.From, opts.Getenv)
	if err != nil {
		return sum, err
	}
	to, err := parseStoreLocation(opts.To, opts.Getenv)
	if err != nil {
		return sum, err
	}
	if from.backend == to.backend && from.path == to.path && from.dsn == to.dsn {
		return sum, errors.New("mcpauth migrate-store: source and destination are the same store")
	}

	src, _, err := openStore(ctx, from, true, opts.LockTimeout, log)
	if err != nil {
		return sum, err
	}
	defer src.Close()
	dst, created, err := openStore(ctx, to, false, opts.LockTimeout, log)
	if err != nil {
		return sum, err
	}
	closeDst := func() { _ = dst.Close() }
	defer func() {
		closeDst()
		if err != nil && created {
			// The file exists only because of this failed run.
			_ = os.Remove(to.path)
		}
	}()
	srcSnap, ok := src.(storage.Snapshotter)
	if !ok {
		return sum, fmt.Errorf("mcpauth migrate-store: %s cannot export", from.display)
	}
	dstSnap, ok := dst.(storage.BatchImporter)
	if !ok {
		return sum, fmt.Errorf("mcpauth migrate-store: %s cannot import", to.display)
	}

	rep, e := storage.Copy(ctx, srcSnap, dstSnap, storage.CopyOptions{BatchSize: opts.BatchSize})
	// failed explains a copy that stopped after the destination was
	// marked incomplete, and how to run it again.
	failed := func(what string) error {
		if created {
			return fmt.Errorf("mcpauth migrate-store: %s; the new file %s is removed, run the command again: %w", what, to.path, e)
		}
		drop := "drop its schema (or its mcpauth_* tables)"
		if to.backend == "bbolt" {
			drop = "delete the file"
		}
		return fmt.Errorf("mcpauth migrate-store: %s; %s is left marked incomplete (servers refuse to start on it): %s, then run the command again: %w", what, to.display, drop, e)
	}
	switch {
	case errors.Is(e, storage.ErrCopyMismatch):
		// The summary below names the kinds.
	case errors.Is(e, storage.ErrCopyIncomplete):
		err = failed("the copy failed")
		return sum, err
	case e != nil:
		err = fmt.Errorf("mcpauth migrate-store: copy into %s refused, nothing was written: %w", to.display, e)
		return sum, err
	}
	sum = MigrationSummary{Source: rep.Counts(true), Destination: rep.Counts(false)}
	printSummary(opts.Out, from.display, to.display, rep)
	if mismatch := rep.Mismatched(); len(mismatch) > 0 {
		err = failed("the destination differs from the source for " + strings.Join(mismatch, ", "))
		return sum, err
	}
	batches := "batches"
	if rep.Batches == 1 {
		batches = "batch"
	}
	fmt.Fprintf(opts.Out, "OK: %s now holds a verified copy of %s (%d %s).\n", to.display, from.display, rep.Batches, batches)
	return sum, nil
}

// printSummary writes the table of a copy.
func printSummary(w io.Writer, from, to string, rep storage.CopyReport) {
	fmt.Fprintf(w, "migrate-store: %s -> %s\n", from, to)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\tsource\tdestination\tcontent\t")
	ts, td := 0, 0
	for _, k := range rep.Kinds {
		state := "same"
		if !k.Same {
			state = "DIFFERENT"
		}
		ts += k.Source
		td += k.Destination
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", k.Kind, k.Source, k.Destination, state)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t\t\n", ts, td)
	_ = tw.Flush()
}
