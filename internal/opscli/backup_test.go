package opscli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// storeCopy returns what the admin API streams for a fresh store: the
// store's Backup (one read transaction's Tx.WriteTo).
func storeCopy(t *testing.T) string {
	t.Helper()
	s, err := bboltstore.Open(filepath.Join(t.TempDir(), "mcpauth.db"), bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b bytes.Buffer
	if _, err := s.Backup(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestWriteChecked: a complete copy replaces the destination; a short copy
// (the stream broke) never does, and leaves no temporary file.
func TestWriteChecked(t *testing.T) {
	body := storeCopy(t)
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := WriteChecked(dst, io.Discard, func(w io.Writer) (int64, error) { return io.Copy(w, strings.NewReader(body)) }); err != nil {
		t.Fatalf("the copy does not check: %v", err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("destination: %v %v", fi, err)
	}

	if err := os.WriteFile(dst, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteChecked(dst, io.Discard, func(w io.Writer) (int64, error) { return io.Copy(w, strings.NewReader(body[:len(body)/2])) })
	if err == nil {
		t.Fatal("a truncated copy was accepted")
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, []byte("previous")) {
		t.Fatalf("destination changed after a failed backup: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".copy.db.partial-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
