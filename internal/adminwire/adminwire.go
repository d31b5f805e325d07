// Package adminwire holds the admin API's JSON answers (clients, users,
// signing keys): the one definition that internal/adminapi writes and the
// operator CLI (internal/opscli) decodes. It imports only the standard
// library, so the CLI links none of the server.
package adminwire

import "time"

// ClientView is a client as the operator sees it (the JSON of GET
// clients[/{id}], which the CLI decodes): no secret hash.
type ClientView struct {
	ID                      string    `json:"id"`
	Kind                    string    `json:"kind"`
	Name                    string    `json:"name"`
	RedirectURIs            []string  `json:"redirect_uris"`
	GrantTypes              []string  `json:"grant_types,omitempty"`
	Scopes                  []string  `json:"scopes,omitempty"`
	DefaultScopes           []string  `json:"default_scopes,omitempty"`
	DefaultAudience         string    `json:"default_audience,omitempty"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method"`
	Confidential            bool      `json:"confidential"`
	SkipConsent             bool      `json:"skip_consent"`
	Disabled                bool      `json:"disabled"`
	LogoURI                 string    `json:"logo_uri,omitempty"`
	ClientURI               string    `json:"client_uri,omitempty"`
	SoftwareID              string    `json:"software_id,omitempty"`
	RegisteredFrom          string    `json:"registered_from,omitempty"`
	CreatedAt               time.Time `json:"created_at"`
	UpdatedAt               time.Time `json:"updated_at"`
	LastUsedAt              time.Time `json:"last_used_at,omitzero"`
	ActiveGrants            *int      `json:"active_grants,omitempty"`
}

// UserView is an account as the operator sees it (the JSON of GET
// users[/{id}], which the CLI decodes): no password hash.
type UserView struct {
	ID                string    `json:"id"`
	Email             string    `json:"email"`
	Name              string    `json:"name,omitempty"`
	EmailVerified     bool      `json:"email_verified"`
	HasPassword       bool      `json:"has_password"`
	Groups            []string  `json:"groups,omitempty"`
	Disabled          bool      `json:"disabled"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	PasswordChangedAt time.Time `json:"password_changed_at,omitzero"`
}

// KeyView is a signing key without its private part (the JSON of GET keys,
// which the CLI decodes).
type KeyView struct {
	ID        string    `json:"kid"`
	Algorithm string    `json:"alg"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at"`
	// ActivatesAt is set while the key is pre-published: published, not
	// signing yet.
	ActivatesAt  time.Time `json:"activates_at,omitzero"`
	RetiredAt    time.Time `json:"retired_at,omitzero"`
	PublishUntil time.Time `json:"publish_until,omitzero"`
}
