package authserver

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// MaxPolicyAccessTokenTTL bounds a client policy's access-token lifetime. A
// long-lived access token is tolerable because the guard checks the grant's
// revocation on every request; a day covers a client that never refreshes
// (Claude's proxy) without making tokens permanent.
const MaxPolicyAccessTokenTTL = 24 * time.Hour

// ConsentNotRemembered, as ClientPolicy.RememberConsent, means the consent
// page never offers to remember the decision and no remembered consent is
// used: the user approves every authorization.
const ConsentNotRemembered time.Duration = -1

// ClientPolicy is the operator's policy for a class of CIMD clients
// (requirement 34). A zero field is "not set here": a less specific policy,
// then the server's setting, applies.
type ClientPolicy struct {
	// AccessTokenTTL is the life of the client's access tokens, at mint and
	// on refresh (at most MaxPolicyAccessTokenTTL).
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the idle life of the client's refresh tokens (the
	// grant's absolute life still ends them).
	RefreshTokenTTL time.Duration
	// Scopes are the scopes the client may ask for (each offered by the
	// server). A request for another scope is invalid_scope; a request
	// without scope gets the default scopes within this set.
	Scopes []string
	// RememberConsent is how long a remembered consent lasts (it also cuts
	// consents stored earlier for longer); ConsentNotRemembered turns
	// remembering off.
	RememberConsent time.Duration
	// MachineUse lets the client use the client_credentials grant (with
	// private_key_jwt) when its document declares that grant
	// (requirement 23). Off unless set.
	MachineUse bool
}

// CIMDPolicy chooses a ClientPolicy for each CIMD client. Precedence, knob
// by knob: the exact client id over its host, an exact host over a
// wildcard, a longer wildcard over a shorter one, and any of them over the
// server's global settings.
type CIMDPolicy struct {
	// Clients are policies by exact client id (the metadata document URL).
	Clients map[string]ClientPolicy
	// Hosts are policies by the client id's host: an exact lower-case host
	// ("claude.ai") or a wildcard ("*.example.com": any subdomain, not the
	// name itself), as in the CIMD trusted hosts.
	Hosts map[string]ClientPolicy
}

// Validate checks the policies against the scopes the server offers
// (offline_access included): client ids are https URLs, hosts lower-case
// names or *.domain, lifetimes not negative and access tokens at most
// MaxPolicyAccessTokenTTL, scopes offered.
func (p CIMDPolicy) Validate(offered []string) error {
	for id, cp := range p.Clients {
		u, err := url.Parse(id)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || !oauth.IsCIMDClientID(id) {
			return fmt.Errorf("authserver: config: cimd client %q: the client id must be an https URL", id)
		}
		if err := cp.validate(offered); err != nil {
			return fmt.Errorf("authserver: config: cimd client %q: %w", id, err)
		}
	}
	for host, cp := range p.Hosts {
		if !validHostPattern(host) {
			return fmt.Errorf("authserver: config: cimd client_host %q: want a lower-case host name or *.domain", host)
		}
		if err := cp.validate(offered); err != nil {
			return fmt.Errorf("authserver: config: cimd client_host %q: %w", host, err)
		}
	}
	return nil
}

func (cp ClientPolicy) validate(offered []string) error {
	switch {
	case cp.AccessTokenTTL < 0 || cp.RefreshTokenTTL < 0:
		return errors.New("negative token lifetime")
	case cp.AccessTokenTTL > MaxPolicyAccessTokenTTL:
		return fmt.Errorf("access token lifetime %s: at most 24h", cp.AccessTokenTTL)
	}
	for _, sc := range cp.Scopes {
		if !contains(offered, sc) {
			return fmt.Errorf("scope %q is not offered by the server", sc)
		}
	}
	return nil
}

// validHostPattern accepts a lower-case DNS name, optionally "*." and a name.
func validHostPattern(p string) bool {
	name := strings.TrimPrefix(p, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// cimdPolicy is the effective policy of a CIMD client id: each knob from
// the most specific policy that sets it (zero: the server's setting).
func (s *Server) cimdPolicy(clientID string) ClientPolicy {
	p := s.cfg.CIMDPolicy
	if len(p.Clients) == 0 && len(p.Hosts) == 0 {
		return ClientPolicy{}
	}
	host := ""
	if u, err := url.Parse(clientID); err == nil {
		host = strings.ToLower(u.Hostname())
	}
	// Least specific first; each later layer overrides what it sets.
	var wild []string
	for pat := range p.Hosts {
		if sfx, ok := strings.CutPrefix(pat, "*."); ok && host != "" && strings.HasSuffix(host, "."+sfx) {
			wild = append(wild, pat)
		}
	}
	sort.Slice(wild, func(i, j int) bool { return len(wild[i]) < len(wild[j]) })
	var layers []ClientPolicy
	for _, pat := range wild {
		layers = append(layers, p.Hosts[pat])
	}
	if cp, ok := p.Hosts[host]; ok && host != "" {
		layers = append(layers, cp)
	}
	if cp, ok := p.Clients[clientID]; ok {
		layers = append(layers, cp)
	}
	var out ClientPolicy
	for _, l := range layers {
		if l.AccessTokenTTL > 0 {
			out.AccessTokenTTL = l.AccessTokenTTL
		}
		if l.RefreshTokenTTL > 0 {
			out.RefreshTokenTTL = l.RefreshTokenTTL
		}
		if l.Scopes != nil {
			out.Scopes = l.Scopes
		}
		if l.RememberConsent != 0 {
			out.RememberConsent = l.RememberConsent
		}
		out.MachineUse = out.MachineUse || l.MachineUse
	}
	return out
}

// applyCIMDPolicy sets a resolved CIMD client's lifetimes and allowed
// scopes from its policy, so that /authorize and /token (code exchange and
// refresh) apply them like an owned client's.
func (s *Server) applyCIMDPolicy(c *storage.Client) {
	p := s.cimdPolicy(c.ID)
	if !p.MachineUse || c.TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT {
		// Only a host the operator marks for machine use, and a client
		// that proves its keys, gets client_credentials.
		c.GrantTypes = slices.DeleteFunc(slices.Clone(c.GrantTypes), func(g string) bool { return g == oauth.GrantClientCredentials })
	}
	if p.AccessTokenTTL > 0 {
		c.AccessTokenTTL = p.AccessTokenTTL
	}
	if p.RefreshTokenTTL > 0 {
		c.RefreshTokenTTL = p.RefreshTokenTTL
	}
	if p.Scopes != nil {
		if len(c.Scopes) == 0 {
			c.Scopes = append([]string(nil), p.Scopes...)
		} else {
			var both []string
			for _, sc := range c.Scopes {
				if contains(p.Scopes, sc) {
					both = append(both, sc)
				}
			}
			c.Scopes = both
			if len(both) == 0 {
				// Nothing left: no scope may be asked for (an empty list
				// would mean every scope).
				c.Scopes = []string{ScopeOfflineAccess}
			}
		}
	}
}

// consentTTL is how long a consent to c is remembered: its policy's
// RememberConsent for a CIMD client, else the server's ConsentTTL.
// ConsentNotRemembered: not at all.
func (s *Server) consentTTL(c storage.Client) time.Duration {
	if c.Kind == storage.ClientCIMD {
		switch d := s.cimdPolicy(c.ID).RememberConsent; {
		case d < 0:
			return ConsentNotRemembered
		case d > 0:
			return d
		}
	}
	return s.cfg.ConsentTTL
}
