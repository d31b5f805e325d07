package caddymodule

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

func newBackupCommand(o *cliOpts) *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "backup <file>",
		Short: "Write a consistent copy of the bbolt store to <file> (restore: start on the copy)",
		Long: `Writes a consistent copy of the bbolt store to <file> (mode 0600), from one
read transaction while the server keeps serving. Without --db the copy comes
from the running server's admin API (--address); with --db <path> the file is
opened read-only, which works only while no server holds it. The copy is
checked before it replaces <file>. To restore, stop the server, put the copy
where 'storage bbolt <path>' points, and start it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			if db != "" {
				return backupFile(c.Context(), db, a[0], o.env.stdout)
			}
			return o.backup(c.Context(), a[0])
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "Copy this bbolt file directly (no server may hold it)")
	return cmd
}

// backup downloads the running server's copy.
func (o *cliOpts) backup(ctx context.Context, dst string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	resp, err := o.request(ctx, http.MethodGet, "backup", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return o.apiError(resp)
	}
	return writeChecked(dst, o.env.stdout, func(w io.Writer) (int64, error) { return io.Copy(w, resp.Body) })
}

// backupFile copies a bbolt file no process holds, opened read-only.
func backupFile(ctx context.Context, src, dst string, out io.Writer) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("mcpauth: backup: %w", err)
	}
	db, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("mcpauth: backup: %s is held by a running server; omit --db to copy it through the server's admin API", src)
	}
	if err != nil {
		return fmt.Errorf("mcpauth: backup: open %s: %w", src, err)
	}
	defer db.Close()
	return writeChecked(dst, out, func(w io.Writer) (int64, error) {
		var n int64
		err := db.View(func(tx *bolt.Tx) error {
			var err error
			n, err = tx.WriteTo(w)
			return err
		})
		return n, err
	})
}

// writeChecked writes a copy to a temporary file next to dst, checks that
// it is a complete bbolt file, and renames it to dst.
func writeChecked(dst string, out io.Writer, write func(io.Writer) (int64, error)) error {
	dir := filepath.Dir(dst)
	f, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return fmt.Errorf("mcpauth: backup: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("mcpauth: backup: %w", err)
	}
	n, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("mcpauth: backup: writing %s: %w", dst, err)
	}
	if err := checkBolt(tmp); err != nil {
		return fmt.Errorf("mcpauth: backup: the copy is not a complete store (%w); %s is unchanged", err, dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("mcpauth: backup: %w", err)
	}
	fmt.Fprintf(out, "Wrote %s (%d bytes). Restore: stop the server, put it at the storage bbolt path, start.\n", dst, n)
	return nil
}

// checkBolt opens a copy read-only and runs bbolt's consistency check.
// The size is checked against the meta page first: bbolt maps the file,
// and a short one would fault instead of failing.
func checkBolt(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	var meta [64]byte
	_, err = io.ReadFull(f, meta[:])
	fi, serr := f.Stat()
	f.Close()
	if err != nil || serr != nil {
		return errors.New("too short for a bbolt file")
	}
	// Page header (16 bytes), then magic, version, page size, flags, root
	// bucket (16), freelist page, high-water page id.
	magic := binary.NativeEndian.Uint32(meta[16:])
	pageSize := int64(binary.NativeEndian.Uint32(meta[24:]))
	hwm := int64(binary.NativeEndian.Uint64(meta[56:]))
	if magic != 0xED0CDAED || pageSize < 512 || hwm < 2 || hwm > fi.Size()/pageSize {
		return fmt.Errorf("%d bytes, not a complete bbolt file", fi.Size())
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		if first == nil && tx.Bucket([]byte("meta")) == nil {
			first = errors.New("no mcp_auth schema")
		}
		return first
	})
}
