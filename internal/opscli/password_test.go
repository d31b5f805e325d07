package opscli

import (
	"strings"
	"testing"
)

// TestCLIPasswordPrompt: on a terminal the password is asked twice and must
// match; nothing is sent otherwise.
func TestCLIPasswordPrompt(t *testing.T) {
	cases := []struct {
		name    string
		answers []string
		want    string
		wantErr string
	}{
		{"match", []string{"typed-passphrase", "typed-passphrase"}, "typed-passphrase", ""},
		{"differ", []string{"typed-passphrase", "other-passphrase"}, "", "differ"},
		{"empty", []string{"", ""}, "", "empty password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := 0
			o := &cliOpts{env: &Env{
				Stdin:      strings.NewReader(""),
				Getenv:     func(string) string { return "" },
				IsTerminal: func() bool { return true },
				ReadSecret: func() ([]byte, error) { i++; return []byte(c.answers[i-1]), nil },
			}}
			got, err := o.password(false)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}
