package mailer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/smtpsink"
)

// TestSendThroughRealSMTPServer delivers to Postfix's smtp-sink and reads
// the captured message back. (smtp-sink answers AUTH with a 250, not the
// 235 of RFC 4954, so authentication is not exercised against it.)
func TestSendThroughRealSMTPServer(t *testing.T) {
	sink := smtpsink.Start(t)
	m, err := New(Config{Host: sink.Host, Port: sink.Port, TLS: TLSNone, From: "Acme MCP <no-reply@acme.example>",
		Now: func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	text := "Grüße: open https://auth.example.com/verify-email?token=abc&return_to=%2Fauthorize%3Fa%3D1 now.\nLine two, long enough to need a soft line break in quoted-printable encoding of the body text.\n"
	if err := m.Send(context.Background(), "user@example.com", "Confirm your email\r\nBcc: evil@example.com", text); err != nil {
		t.Fatal(err)
	}
	got := sink.Wait(t, "user@example.com", nil)
	if strings.TrimRight(got.Body, "\n") != strings.TrimRight(text, "\n") { // the sink ends the dump with a blank line
		t.Fatalf("body:\n%q\nwant\n%q", got.Body, text)
	}
	if got.Header.Get("Bcc") != "" || !strings.Contains(got.Header.Get("Subject"), "Confirm your email") {
		t.Fatalf("header injection or lost subject: %v", got.Header)
	}
	if from := got.Header.Get("From"); !strings.Contains(from, "no-reply@acme.example") {
		t.Fatalf("From = %q", from)
	}
	if err := m.Send(context.Background(), "a@example.com>\r\nRCPT TO:<b@example.com", "s", "t"); err == nil {
		t.Fatal("a recipient with CRLF was accepted")
	}

	// starttls (the default) refuses a server that does not offer it.
	strict, err := New(Config{Host: sink.Host, Port: sink.Port, From: "no-reply@acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	if err := strict.Send(context.Background(), "user@example.com", "s", "t"); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("starttls against a plain server: %v", err)
	}
}

func TestConfigRefusals(t *testing.T) {
	for name, c := range map[string]Config{
		"no host":                {From: "a@example.com"},
		"plain to a remote host": {Host: "smtp.example.com", TLS: TLSNone, From: "a@example.com"},
		"unknown tls mode":       {Host: "smtp.example.com", TLS: "maybe", From: "a@example.com"},
		"bad from":               {Host: "smtp.example.com", From: "not an address"},
		"from with CRLF":         {Host: "smtp.example.com", From: "a@example.com\r\nBcc: b@example.com"},
		"password w/o username":  {Host: "smtp.example.com", From: "a@example.com", Password: "x"},
		"port out of range":      {Host: "smtp.example.com", From: "a@example.com", Port: 70000},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	m, err := New(Config{Host: "smtp.example.com", TLS: TLSImplicit, From: "a@example.com"})
	if err != nil || m.cfg.Port != 465 {
		t.Fatalf("implicit TLS default port: %v %+v", err, m)
	}
}
