package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
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

// NewMigrateStoreCommand returns the `migrate-store` subcommand of
// `caddy-mcpauth mcpauth`: it copies every record of one store into another,
// empty one (bbolt -> postgres to move an installation onto a shared
// database, postgres -> bbolt back), verifies the copy and prints a
// summary.
func NewMigrateStoreCommand() *cobra.Command {
	var (
		from, to    string
		lockTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "migrate-store --from <store> --to <store>",
		Short: "Copy the authorization server's store to another backend (bbolt <-> postgres)",
		Long: strings.TrimSpace(`
Copies every record of the mcp_auth store (clients, signing keys, accounts and
their upstream identities, consents, grants with every refresh token of their
families, authorization codes, sessions, tickets, audit log) into an EMPTY
destination store, in one all-or-nothing transaction, then reads the
destination back and checks the count and content digest of every kind.

A store is written as:
  bbolt:/var/lib/caddy/mcpauth/mcpauth.db
  postgres:postgres://mcpauth@db.internal/mcpauth?sslmode=verify-full
  postgres:env:MCPAUTH_DSN    (the DSN is read from that environment variable,
                               so that no password appears on the command line)

Stop every Caddy server using the source first: a bbolt file is locked by
the server that has it open (the command gives up after --lock-timeout), and
records written to a PostgreSQL source during the copy would not be copied.
A destination that already holds records is refused and left untouched; a
failed copy leaves the destination empty, so the command can simply be run
again. Then point the mcp_auth app at the destination
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
				From: from, To: to, LockTimeout: lockTimeout, Out: cmd.OutOrStdout(),
			})
			return err
		},
	}
	cmd.SilenceUsage = true
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source store: bbolt:<path> or postgres:<dsn> or postgres:env:<VAR>")
	f.StringVar(&to, "to", "", "destination store (must be empty): bbolt:<path> or postgres:<dsn> or postgres:env:<VAR>")
	f.DurationVar(&lockTimeout, "lock-timeout", 3*time.Second, "how long to wait for a bbolt file held by a running server")
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
	dstSnap, ok := dst.(storage.Snapshotter)
	if !ok {
		return sum, fmt.Errorf("mcpauth migrate-store: %s cannot import", to.display)
	}

	// Export feeds Import through a channel: Export holds its snapshot
	// while Import writes, records are never all in memory at once.
	srcDigest := newKindDigest()
	recs := make(chan storage.Record, 256)
	exportErr := make(chan error, 1)
	ectx, cancelExport := context.WithCancel(ctx)
	defer cancelExport()
	go func() {
		defer close(recs)
		exportErr <- srcSnap.Export(ectx, func(r storage.Record) error {
			if err := srcDigest.add(r); err != nil {
				return err
			}
			select {
			case recs <- r:
				return nil
			case <-ectx.Done():
				return ectx.Err()
			}
		})
	}()
	var (
		exportDone   bool
		exportResult error
	)
	importErr := dstSnap.Import(ctx, func() (storage.Record, error) {
		if r, ok := <-recs; ok {
			return r, nil
		}
		exportDone, exportResult = true, <-exportErr
		if exportResult != nil {
			return storage.Record{}, fmt.Errorf("export from %s: %w", from.display, exportResult)
		}
		return storage.Record{}, io.EOF
	})
	if !exportDone {
		// Import stopped early: stop Export and let it return.
		cancelExport()
		for range recs {
		}
		<-exportErr
	}
	if importErr != nil {
		err = fmt.Errorf("mcpauth migrate-store: copy into %s failed, nothing was written: %w", to.display, importErr)
		return sum, err
	}

	// Read the destination back.
	dstDigest := newKindDigest()
	if e := dstSnap.Export(ctx, dstDigest.add); e != nil {
		err = fmt.Errorf("mcpauth migrate-store: verify %s: %w", to.display, e)
		return sum, err
	}
	sum = MigrationSummary{Source: srcDigest.counts, Destination: dstDigest.counts}
	mismatch := printSummary(opts.Out, from.display, to.display, srcDigest, dstDigest)
	if len(mismatch) > 0 {
		err = fmt.Errorf("mcpauth migrate-store: destination differs from source for %s: the copy was committed; empty the destination before trying again", strings.Join(mismatch, ", "))
		return sum, err
	}
	fmt.Fprintf(opts.Out, "OK: %s now holds a verified copy of %s.\n", to.display, from.display)
	return sum, nil
}

// kindDigest counts records per kind and combines their content digests
// (XOR of the SHA-256 of each record's canonical encoding: independent of
// the order in which backends list them).
type kindDigest struct {
	counts  map[string]int
	digests map[string][sha256.Size]byte
}

func newKindDigest() *kindDigest {
	return &kindDigest{counts: map[string]int{}, digests: map[string][sha256.Size]byte{}}
}

// recordForDigest is a Record with the `json:"-"` hash keys spelled out and
// the refresh family sorted.
type recordForDigest struct {
	storage.Record
	CodeHash, SessionHash, TicketHash []byte
}

func (d *kindDigest) add(r storage.Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	c := recordForDigest{Record: r}
	if r.Code != nil {
		c.CodeHash = r.Code.Hash
	}
	if r.Session != nil {
		c.SessionHash = r.Session.Hash
	}
	if r.Ticket != nil {
		c.TicketHash = r.Ticket.Hash
	}
	if len(r.RefreshHashes) > 0 {
		c.RefreshHashes = slices.Clone(r.RefreshHashes)
		slices.SortFunc(c.RefreshHashes, bytes.Compare)
	} else {
		c.RefreshHashes = nil
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("digest %s record: %w", r.Kind, err)
	}
	h := sha256.Sum256(raw)
	acc := d.digests[r.Kind]
	for i := range acc {
		acc[i] ^= h[i]
	}
	d.digests[r.Kind] = acc
	d.counts[r.Kind]++
	return nil
}

// printSummary writes the table and returns the kinds that differ.
func printSummary(w io.Writer, from, to string, src, dst *kindDigest) []string {
	fmt.Fprintf(w, "migrate-store: %s -> %s\n", from, to)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\tsource\tdestination\tcontent\t")
	var mismatch []string
	ts, td := 0, 0
	for _, k := range storage.RecordKinds {
		state := "same"
		if src.counts[k] != dst.counts[k] || src.digests[k] != dst.digests[k] {
			state = "DIFFERENT"
			mismatch = append(mismatch, k)
		}
		ts += src.counts[k]
		td += dst.counts[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", k, src.counts[k], dst.counts[k], state)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t\t\n", ts, td)
	_ = tw.Flush()
	return mismatch
}
