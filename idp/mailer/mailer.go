// Package mailer sends the hosted login's mails (signup verification) through
// an SMTP server, with Go's net/smtp. It knows nothing of Caddy.
//
// Transport security is explicit: "starttls" (the default; the server must
// offer STARTTLS, the certificate is verified), "tls" (implicit TLS, usually
// port 465) or "none" (plain text, allowed only to a loopback server such as
// a local relay). Credentials are sent only over TLS, or in plain text to a
// loopback server (net/smtp's PlainAuth rule).
package mailer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// TLS modes.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// Config configures an SMTP mailer.
type Config struct {
	// Host and Port of the SMTP server (Port default: 587, or 465 with TLS "tls").
	Host string
	Port int
	// TLS is "starttls" (default), "tls" or "none" (loopback servers only).
	TLS string
	// From is the sender address (an addr-spec, optionally with a display name).
	From string
	// Username and Password authenticate with AUTH PLAIN when Username is set.
	Username string
	Password string
	// Timeout bounds one delivery, connection included (default 30s).
	Timeout time.Duration
	// TLSConfig, when set, replaces the TLS client configuration (tests:
	// a private root CA). ServerName defaults to Host.
	TLSConfig *tls.Config
	// Now is the clock for the Date header (default time.Now).
	Now func() time.Time
}

// SMTP delivers mails to one SMTP server.
type SMTP struct {
	cfg  Config
	from *mail.Address
}

// New validates cfg and returns the mailer. It does not connect.
func New(cfg Config) (*SMTP, error) {
	if cfg.Host == "" || strings.ContainsAny(cfg.Host, " /\r\n") {
		return nil, errors.New("mailer: smtp host is required")
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSStartTLS
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !isLoopback(cfg.Host) {
			return nil, fmt.Errorf("mailer: smtp tls none is allowed only for a loopback host, not %q", cfg.Host)
		}
	default:
		return nil, fmt.Errorf("mailer: smtp tls %q: use starttls, tls or none", cfg.TLS)
	}
	if cfg.Port == 0 {
		cfg.Port = 587
		if cfg.TLS == TLSImplicit {
			cfg.Port = 465
		}
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("mailer: smtp port %d is out of range", cfg.Port)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil || strings.ContainsAny(cfg.From, "\r\n") {
		return nil, fmt.Errorf("mailer: smtp from %q is not an email address", cfg.From)
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errors.New("mailer: smtp password without username")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &SMTP{cfg: cfg, from: from}, nil
}

// Send delivers one plain-text mail to a single recipient (a bare address).
func (m *SMTP) Send(ctx context.Context, to, subject, text string) error {
	rcpt, err := mail.ParseAddress(to)
	if err != nil || rcpt.Address != to || strings.ContainsAny(to, "\r\n<>") {
		return errors.New("mailer: recipient is not a bare email address")
	}
	msg, err := m.message(to, subject, text)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("mailer: connecting to %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if m.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, m.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("mailer: tls with %s: %w", addr, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, m.cfg.Host)
	if err != nil {
		return fmt.Errorf("mailer: %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("mailer: EHLO: %w", err)
	}
	if m.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("mailer: %s does not offer STARTTLS (set tls to \"tls\" or, for a loopback relay, \"none\")", addr)
		}
		if err := c.StartTLS(m.tlsConfig()); err != nil {
			return fmt.Errorf("mailer: STARTTLS: %w", err)
		}
	}
	if m.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.cfg.Host)); err != nil {
			return fmt.Errorf("mailer: AUTH: %w", err)
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return fmt.Errorf("mailer: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("mailer: RCPT TO: %w", err)
	}
	wc, err := c.Data()
	if err != nil {
		return fmt.Errorf("mailer: DATA: %w", err)
	}
	if _, err := wc.Write(msg); err != nil {
		return fmt.Errorf("mailer: DATA: %w", err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("mailer: DATA: %w", err)
	}
	return c.Quit()
}

func (m *SMTP) tlsConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if m.cfg.TLSConfig != nil {
		c = m.cfg.TLSConfig.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = m.cfg.Host
	}
	return c
}

// message builds an RFC 5322 message: UTF-8 text, quoted-printable, the
// subject Q-encoded; no header takes a CR or LF from its input.
func (m *SMTP) message(to, subject, text string) ([]byte, error) {
	subject = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, subject)
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("mailer: message id: %w", err)
	}
	_, domain, _ := strings.Cut(m.from.Address, "@")
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", m.from.String())
	hdr("To", to)
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", m.cfg.Now().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
