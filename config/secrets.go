package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/mcpauth/caddy-mcpauth/authserver"
)

// ResolveKEK replaces placeholders in the key-encryption key options and
// reads their files (Resolve calls it). The values are checked by Validate.
func (a *App) ResolveKEK(replace func(string) string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if a.kek, err = readKEK(replace, logger, "key_encryption_key", a.KeyEncryptionKey, a.KeyEncryptionKeyFile); err != nil {
		return err
	}
	a.kekPrevious, err = readKEK(replace, logger, "key_encryption_key_previous", a.KeyEncryptionKeyPrevious, a.KeyEncryptionKeyPreviousFile)
	return err
}

func readKEK(replace func(string) string, logger *slog.Logger, name, value, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fmt.Errorf("mcp_auth: %s and %s_file are exclusive", name, name)
	case value != "":
		if !strings.Contains(value, "{") {
			logger.Warn("mcp_auth: "+name+" is written in the config itself; prefer {env.*} or "+name+"_file", "option", name)
		}
		v := replace(value)
		if strings.TrimSpace(v) == "" {
			// Validate would not tell an unset variable from an unset option.
			return "", fmt.Errorf("mcp_auth: %s is empty after replacing placeholders (is the environment variable set?)", name)
		}
		return v, nil
	case file != "":
		path := replace(file)
		b, err := os.ReadFile(path)
		if err != nil {
			// The error names the path, never the content.
			return "", fmt.Errorf("mcp_auth: %s_file: %w", name, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			logger.Warn("mcp_auth: "+name+"_file is readable by group or others; chmod 600 it", "file", path)
		}
		if strings.TrimSpace(string(b)) == "" {
			return "", fmt.Errorf("mcp_auth: %s_file %s is empty", name, path)
		}
		return string(b), nil
	}
	return "", nil
}

// validateKEK checks the key-encryption keys (after ResolveKEK). Errors
// never include a key.
func (a *App) validateKEK() error {
	if a.KeyEncryptionKey != "" && a.KeyEncryptionKeyFile != "" {
		return errors.New("mcp_auth: key_encryption_key and key_encryption_key_file are exclusive")
	}
	if a.KeyEncryptionKeyPrevious != "" && a.KeyEncryptionKeyPreviousFile != "" {
		return errors.New("mcp_auth: key_encryption_key_previous and key_encryption_key_previous_file are exclusive")
	}
	if a.kek == "" && a.kekPrevious != "" {
		return errors.New("mcp_auth: key_encryption_key_previous needs key_encryption_key (the new key)")
	}
	if a.kek != "" {
		if _, err := authserver.ParseKeyEncryptionKey(a.kek); err != nil {
			return fmt.Errorf("mcp_auth: key_encryption_key: %w", err)
		}
	}
	if a.kekPrevious != "" {
		if _, err := authserver.ParseKeyEncryptionKey(a.kekPrevious); err != nil {
			return fmt.Errorf("mcp_auth: key_encryption_key_previous: %w", err)
		}
	}
	return nil
}

// keyEncryption builds the signing keys' at-rest encryption (nil when no
// key-encryption key is configured).
func (a *App) keyEncryption() (*authserver.KeyEncryption, error) {
	if a.kek == "" {
		return nil, nil
	}
	cur, err := authserver.ParseKeyEncryptionKey(a.kek)
	if err != nil {
		return nil, fmt.Errorf("mcp_auth: key_encryption_key: %w", err)
	}
	var prev [][]byte
	if a.kekPrevious != "" {
		p, err := authserver.ParseKeyEncryptionKey(a.kekPrevious)
		if err != nil {
			return nil, fmt.Errorf("mcp_auth: key_encryption_key_previous: %w", err)
		}
		prev = append(prev, p)
	}
	enc, err := authserver.NewKeyEncryption(cur, prev...)
	if err != nil {
		return nil, fmt.Errorf("mcp_auth: key_encryption_key: %w", err)
	}
	return enc, nil
}
