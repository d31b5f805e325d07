// Package smtpsink runs Postfix's smtp-sink (Debian package postfix) as a
// real SMTP server for tests: it listens on a free loopback port and dumps
// every message it accepts to a file in a temporary directory, which the
// tests read to follow the links in the mail.
package smtpsink

import (
	"bytes"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sink is a running smtp-sink.
type Sink struct {
	Host string
	Port int
	Dir  string
}

// Binary returns the path of smtp-sink. When it is missing the test fails
// under MCPAUTH_TEST_STRICT=1 or CI=true and is skipped otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"smtp-sink", "/usr/sbin/smtp-sink"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	const msg = "smtp-sink is not installed (Debian package postfix; scripts/test-deps.sh installs it)"
	if os.Getenv("MCPAUTH_TEST_STRICT") == "1" || os.Getenv("CI") == "true" {
		t.Fatal(msg + ": refusing to skip the SMTP tests")
	}
	t.Skip(msg)
	return ""
}

// Start runs smtp-sink on a free loopback port until the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	bin := Binary(t)
	// Not t.TempDir: its parent is private, and smtp-sink run as root
	// drops to nobody, which must reach the directory.
	dir, err := os.MkdirTemp("", "smtpsink")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	args := []string{"-d", filepath.Join(dir, "%Y%m%d%H%M%S.")}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, "127.0.0.1:"+strconv.Itoa(port), "16")
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting smtp-sink: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink did not listen on %d: %v %s", port, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Sink{Host: "127.0.0.1", Port: port, Dir: dir}
}

// Message is one captured mail.
type Message struct {
	Header mail.Header
	// Body is the decoded text body.
	Body string
}

// Messages returns the captured mails addressed to rcpt, oldest first.
func (s *Sink) Messages(t testing.TB, rcpt string) []Message {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.Dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []Message
	for _, name := range names {
		raw, err := os.ReadFile(name)
		if err != nil || len(raw) == 0 {
			continue
		}
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			continue // still being written
		}
		if !strings.EqualFold(m.Header.Get("To"), rcpt) {
			continue
		}
		body, err := io.ReadAll(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			if body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		out = append(out, Message{Header: m.Header, Body: strings.ReplaceAll(string(body), "\r\n", "\n")})
	}
	return out
}

// Wait returns a captured mail to rcpt for which match is true, waiting up
// to 20 s for it (nil matches any).
func (s *Sink) Wait(t testing.TB, rcpt string, match func(Message) bool) Message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, m := range s.Messages(t, rcpt) {
			if match == nil || match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching mail to %s in %s", rcpt, s.Dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// String names the sink's address.
func (s *Sink) String() string { return fmt.Sprintf("smtp-sink %s:%d", s.Host, s.Port) }
