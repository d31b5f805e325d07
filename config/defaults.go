package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
)

// Resolve replaces the placeholders of the configuration (replace is the
// host's placeholder replacer: {env.*} and the like), sets the store's
// defaults (its bbolt file under dataDir) and reads the key-encryption
// keys. A seeded secret or password that is empty once replaced is
// refused, naming the unset environment variables: it would create an
// account without a password or a client with an empty secret.
func (a *App) Resolve(replace func(string) string, dataDir string, logger *slog.Logger) error {
	a.Issuer = strings.TrimRight(replace(a.Issuer), "/")
	if err := a.Storage.Resolve(replace, dataDir); err != nil {
		return err
	}
	for i := range a.Clients {
		c := &a.Clients[i]
		raw := c.Secret
		c.Secret = replace(raw)
		if raw != "" && strings.TrimSpace(c.Secret) == "" {
			return fmt.Errorf("%smcp_auth: client %q: its secret %s is empty%s: set it before starting Caddy, or remove `secret` to make the client public",
				at(c.Source), c.ID, raw, unsetVars(raw))
		}
	}
	for i := range a.Login.Users {
		u := &a.Login.Users[i]
		raw := u.Password
		u.Password = replace(raw)
		if strings.TrimSpace(u.Password) == "" && u.PasswordHash == "" {
			what := "has no password"
			if raw != "" {
				what = "its password " + raw + " is empty" + unsetVars(raw)
			}
			return fmt.Errorf("%smcp_auth: login user %s %s: set it before starting Caddy (the account would be created without a password), or remove the user",
				at(u.Source), u.Email, what)
		}
	}
	if err := a.ResolveKEK(replace, logger); err != nil {
		return err
	}
	if s := a.Login.SMTP; s != nil {
		s.Host = replace(s.Host)
		s.From = replace(s.From)
		s.Username = replace(s.Username)
		s.Password = replace(s.Password)
	}
	return nil
}

// SetDefaults fills what an empty field means. The others are defaulted by
// the domain packages (authserver, idp, cimd), whose defaults the docs of
// the fields name.
func (a *App) SetDefaults(logger *slog.Logger) {
	if a.SigningAlgorithm == "" {
		a.SigningAlgorithm = "ES256"
	}
	if a.ClientIPv4Prefix == 0 {
		a.ClientIPv4Prefix = abuse.DefaultIPv4Bits
	}
	if a.ClientIPv6Prefix == 0 {
		a.ClientIPv6Prefix = abuse.DefaultIPv6Bits
	}
	if a.AccessTokenLifetime == 0 {
		a.AccessTokenLifetime = Duration(time.Hour)
	}
	if a.RefreshGrace == nil {
		g := Duration(authserver.DefaultRefreshGrace)
		a.RefreshGrace = &g
	}
	if a.TokenRateBurst <= 0 {
		a.TokenRateBurst = 50
	}
	if a.DCR != nil {
		if a.DCR.RateEvery <= 0 {
			a.DCR.RateEvery = Duration(6 * time.Minute)
		}
		if a.DCR.RateBurst <= 0 {
			a.DCR.RateBurst = authserver.DefaultRegistrationBurst
		}
		if a.DCR.GlobalRateEvery <= 0 {
			a.DCR.GlobalRateEvery = Duration(authserver.DefaultRegistrationGlobalGap)
		}
		if a.DCR.GlobalRateBurst <= 0 {
			a.DCR.GlobalRateBurst = authserver.DefaultRegistrationGlobal
		}
		if a.DCR.MaxClientsPerPrefix <= 0 {
			a.DCR.MaxClientsPerPrefix = authserver.DefaultMaxClientsPerPrefix
		}
		if a.DCR.MaxClients <= 0 {
			a.DCR.MaxClients = authserver.DefaultMaxClients
		}
		if a.DCR.ExpireUnused == nil {
			d := Duration(authserver.DefaultDCRExpireUnused)
			a.DCR.ExpireUnused = &d
		}
	}
	if a.CIMD != nil && a.CIMD.InsecureAllowLoopback && logger != nil {
		logger.Warn("mcp_auth: cimd insecure_allow_loopback is ON: client metadata documents may be fetched from this machine; never use this in production")
	}
}
