package idp

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mcpauth/caddy-mcpauth/idp/internal/upstream"
)

// The upstream record: what every kind of upstream provider (idp/oidc,
// idp/saml, a future GitHub OAuth or LDAP package) shares. A kind embeds
// UpstreamConfig in its Config and Upstream in its provider, and writes only
// its Flow.

// UpstreamConfig is the part of an upstream provider's configuration that
// the hosted login reads: the button and who may sign in. Embed it in a
// kind's Config.
type UpstreamConfig struct {
	// Name is the provider's stable id (ValidProviderName); it appears in
	// URLs and in linked identities.
	Name string
	// DisplayName is the button label ("Sign in with " is prepended).
	// Default: Name.
	DisplayName string
	// IconURL is an optional https or data:image URL for the button.
	IconURL string
	// Allow restricts who may sign in; with every list empty, everyone the
	// provider vouches for is allowed.
	Allow AllowRules
	// LinkByEmail links a first-time identity to an existing local account
	// with the same verified email. Off by default.
	LinkByEmail bool
	// NoAccountCreation refuses identities not linked to an account yet.
	NoAccountCreation bool
}

// AllowRules admit a user when any list matches.
type AllowRules struct {
	// EmailDomains admits users whose verified email is in one of these domains.
	EmailDomains []string
	// Groups admits members of any of these groups.
	Groups []string
	// Subjects admits these upstream subjects.
	Subjects []string
}

// Check validates c and fills in its defaults (display name, lower-case
// email domains). kind prefixes the errors ("oidc", "saml").
func (c *UpstreamConfig) Check(kind string) error {
	if !ValidProviderName(c.Name) {
		return fmt.Errorf("%s: provider name %q must be 1-32 lower-case letters, digits or -", kind, c.Name)
	}
	if c.DisplayName == "" {
		c.DisplayName = c.Name
	}
	if c.IconURL != "" && !upstream.ValidIcon(c.IconURL) {
		return fmt.Errorf("%s: %s: icon %q must be an https or data:image URL", kind, c.Name, c.IconURL)
	}
	for i, d := range c.Allow.EmailDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" || strings.ContainsAny(d, "@ /") {
			return fmt.Errorf("%s: %s: allowed email domain %q is not a domain", kind, c.Name, c.Allow.EmailDomains[i])
		}
		c.Allow.EmailDomains[i] = d
	}
	return nil
}

// Upstream implements the record half of Provider (UpstreamInfo) from an
// UpstreamConfig. Embed it in a provider.
type Upstream struct {
	kind string
	cfg  UpstreamConfig
}

// NewUpstream returns the record of a provider of kind ("oidc", "saml")
// configured by cfg (checked with Check first).
func NewUpstream(kind string, cfg UpstreamConfig) Upstream {
	return Upstream{kind: kind, cfg: cfg}
}

// Name implements UpstreamInfo.
func (u Upstream) Name() string { return u.cfg.Name }

// Kind implements UpstreamInfo.
func (u Upstream) Kind() string { return u.kind }

// DisplayName implements UpstreamInfo.
func (u Upstream) DisplayName() string { return u.cfg.DisplayName }

// IconURL implements UpstreamInfo.
func (u Upstream) IconURL() string { return u.cfg.IconURL }

// Policy implements UpstreamInfo.
func (u Upstream) Policy() UpstreamPolicy {
	return UpstreamPolicy{
		LinkByEmail:       u.cfg.LinkByEmail,
		NoAccountCreation: u.cfg.NoAccountCreation,
		AllowedDomains:    slices.Clone(u.cfg.Allow.EmailDomains),
		AllowedGroups:     slices.Clone(u.cfg.Allow.Groups),
		AllowedSubjects:   slices.Clone(u.cfg.Allow.Subjects),
	}
}
