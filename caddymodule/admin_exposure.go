package caddymodule

import (
	"net"
	"reflect"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

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
