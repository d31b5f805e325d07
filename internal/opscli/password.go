package opscli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// password reads a new password: stdin (first line) with --password-stdin,
// else MCPAUTH_PASSWORD, else a terminal prompt (twice).
func (o *cliOpts) password(fromStdin bool) (string, error) {
	env := o.env
	if fromStdin {
		line, err := bufio.NewReader(env.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("mcpauth: reading the password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("mcpauth: empty password on stdin")
		}
		return pw, nil
	}
	if pw := env.Getenv("MCPAUTH_PASSWORD"); pw != "" {
		return pw, nil
	}
	if !env.IsTerminal() {
		return "", errors.New("mcpauth: no password: use --password-stdin or MCPAUTH_PASSWORD (stdin is not a terminal)")
	}
	fmt.Fprint(os.Stderr, "New password: ")
	a, err := env.ReadSecret()
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("mcpauth: reading the password: %w", err)
	}
	fmt.Fprint(os.Stderr, "Repeat it: ")
	b, err := env.ReadSecret()
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
