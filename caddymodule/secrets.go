package caddymodule

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/mcpauth/caddy-mcpauth/authserver"
)

// provisionKEK replaces placeholders in the key-encryption key options and
// reads their files. The values are checked by Validate.
func (a *App) provisionKEK(repl *caddy.Replacer) error {
	var err error
	if a.kek, err = a.readKEK(repl, "key_encryption_key", a.KeyEncryptionKey, a.KeyEncryptionKeyFile); err != nil {
		return err
	}
	a.kekPrevious, err = a.readKEK(repl, "key_encryption_key_previous", a.KeyEncryptionKeyPrevious, a.KeyEncryptionKeyPreviousFile)
	return err
}

func (a *App) readKEK(repl *caddy.Replacer, name, value, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fmt.Errorf("mcp_auth: %s and %s_file are exclusive", name, name)
	case value != "":
		if !strings.Contains(value, "{") {
			a.logger.Warn("mcp_auth: "+name+" is written in the config itself; prefer {env.*} or "+name+"_file", zap.String("option", name))
		}
		v := repl.ReplaceKnown(value, "")
		if strings.TrimSpace(v) == "" {
			// Validate would not tell an unset variable from an unset option.
			return "", fmt.Errorf("mcp_auth: %s is empty after replacing placeholders (is the environment variable set?)", name)
		}
		return v, nil
	case file != "":
		path := repl.ReplaceKnown(file, "")
		b, err := os.ReadFile(path)
		if err != nil {
			// The error names the path, never the content.
			return "", fmt.Errorf("mcp_auth: %s_file: %w", name, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			a.logger.Warn("mcp_auth: "+name+"_file is readable by group or others; chmod 600 it", zap.String("file", path))
		}
		if strings.TrimSpace(string(b)) == "" {
			return "", fmt.Errorf("mcp_auth: %s_file %s is empty", name, path)
		}
		return string(b), nil
	}
	return "", nil
}

// validateKEK checks the key-encryption keys (after provisionKEK). Errors
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

// adminConfig is what the exposure check needs of Caddy's admin config.
type adminConfig struct {
	listen   string
	disabled bool
}

// adminOf returns the admin endpoint settings of the config being
// provisioned. Caddy does not export a module's view of them, so they are
// read from the context's config by reflection (read-only); if that fails
// (a Caddy version with another layout), Caddy's default is assumed.
func adminOf(ctx caddy.Context) adminConfig {
	def := adminConfig{listen: caddy.DefaultAdminListen}
	v := reflect.ValueOf(ctx)
	if v.Kind() != reflect.Struct {
		return def
	}
	cfg := v.FieldByName("cfg")
	if !cfg.IsValid() || cfg.Kind() != reflect.Pointer || cfg.IsNil() {
		return def
	}
	admin := cfg.Elem().FieldByName("Admin")
	if !admin.IsValid() || admin.Kind() != reflect.Pointer || admin.IsNil() {
		return def
	}
	listen, disabled := admin.Elem().FieldByName("Listen"), admin.Elem().FieldByName("Disabled")
	if listen.Kind() != reflect.String || disabled.Kind() != reflect.Bool {
		return def
	}
	out := adminConfig{listen: listen.String(), disabled: disabled.Bool()}
	if out.listen == "" {
		out.listen = caddy.DefaultAdminListen
	}
	return out
}

// adminBeyondLoopback reports whether an admin listen address accepts
// connections from other machines: any address but a loopback IP,
// "localhost" or a unix socket (or an inherited file descriptor, which
// cannot be judged). Unparsable addresses count as exposed.
func adminBeyondLoopback(listen string) bool {
	listen = caddy.NewReplacer().ReplaceKnown(listen, "")
	if listen == "" {
		listen = caddy.DefaultAdminListen
	}
	na, err := caddy.ParseNetworkAddress(listen)
	if err != nil {
		return true
	}
	if na.IsUnixNetwork() || na.IsFdNetwork() {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(na.Host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// warnAdminExposure logs a warning when Caddy's admin endpoint listens
// beyond loopback: it serves the mcp_auth admin API (clients, users,
// grants, keys) to whoever reaches it.
func warnAdminExposure(logger *zap.Logger, admin adminConfig) {
	if admin.disabled || !adminBeyondLoopback(admin.listen) {
		return
	}
	logger.Warn("mcp_auth: Caddy's admin endpoint listens beyond loopback: anyone who reaches it can manage mcp_auth "+
		"(clients, users, grants, signing keys) and replace the whole config; bind it to localhost or a unix socket",
		zap.String("admin_listen", admin.listen))
}
