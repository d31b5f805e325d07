package config

// The upstream identity providers of the hosted login. caddymodule's
// upstream.go still has its own copies of these two types (its Caddyfile
// parsing and providers() are another change's); the JSON is the same.

// OIDCProvider is an upstream OpenID Connect provider shown on the login
// page. Its redirect URI is {issuer origin}/login/{name}/callback.
type OIDCProvider struct {
	// Name is the provider's id in URLs (lower-case letters, digits, -).
	Name string `json:"name"`
	// DisplayName is the button's label.
	DisplayName string `json:"display_name,omitempty"`
	// IconURL is the button's icon.
	IconURL string `json:"icon_url,omitempty"`
	// Issuer is the provider's issuer (https; http only on loopback).
	Issuer string `json:"issuer"`
	// ClientID and ClientSecret are our client at the provider (use {env.*}).
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes requested (default openid email profile).
	Scopes []string `json:"scopes,omitempty"`
	// Claim names for subject, email, email_verified, name and groups.
	ClaimSubject       string `json:"claim_subject,omitempty"`
	ClaimEmail         string `json:"claim_email,omitempty"`
	ClaimEmailVerified string `json:"claim_email_verified,omitempty"`
	ClaimName          string `json:"claim_name,omitempty"`
	ClaimGroups        string `json:"claim_groups,omitempty"`
	// UserInfo also reads the userinfo endpoint.
	UserInfo bool `json:"userinfo,omitempty"`
	// Allow rules: any that is set must match.
	AllowEmailDomains []string `json:"allow_email_domains,omitempty"`
	AllowGroups       []string `json:"allow_groups,omitempty"`
	AllowSubjects     []string `json:"allow_subjects,omitempty"`
	// LinkByEmail links to an existing local account with the same verified email.
	LinkByEmail bool `json:"link_by_email,omitempty"`
	// NoAccountCreation refuses users who have no linked local account.
	NoAccountCreation bool `json:"no_account_creation,omitempty"`
}

// SAMLProvider is an upstream SAML 2.0 identity provider. Our SP entity id is
// {issuer origin}/login/{name}/metadata (also where our metadata is served)
// and the ACS is {issuer origin}/login/{name}/acs (HTTP-POST).
type SAMLProvider struct {
	// Name is the provider's id in URLs.
	Name string `json:"name"`
	// DisplayName is the button's label.
	DisplayName string `json:"display_name,omitempty"`
	// IconURL is the button's icon.
	IconURL string `json:"icon_url,omitempty"`
	// IdPMetadataURL or IdPMetadataFile give the IdP's metadata.
	IdPMetadataURL  string `json:"idp_metadata_url,omitempty"`
	IdPMetadataFile string `json:"idp_metadata_file,omitempty"`
	// EntityID overrides our SP entity id.
	EntityID string `json:"entity_id,omitempty"`
	// SPCertFile and SPKeyFile are our signing pair (PEM). Default: generated
	// once and kept in Caddy's storage.
	SPCertFile string `json:"sp_cert_file,omitempty"`
	SPKeyFile  string `json:"sp_key_file,omitempty"`
	// Binding for the request: "redirect" or "post" (default: the IdP's first).
	Binding string `json:"binding,omitempty"`
	// MetadataValidity is the validUntil of our SP metadata, from now
	// (default 48h; 1h to 8760h). IdPs should refresh from the metadata URL.
	MetadataValidity Duration `json:"metadata_validity,omitempty"`
	// Attribute names for subject, email, name and groups.
	AttrSubject string `json:"attr_subject,omitempty"`
	AttrEmail   string `json:"attr_email,omitempty"`
	AttrName    string `json:"attr_name,omitempty"`
	AttrGroups  string `json:"attr_groups,omitempty"`
	// TrustEmail treats the IdP's email as verified.
	TrustEmail bool `json:"trust_email,omitempty"`
	// AcceptResponseSignature accepts a signed Response around an unsigned
	// assertion (some IdPs sign only the response by default).
	AcceptResponseSignature bool `json:"accept_response_signature,omitempty"`
	// Allow rules, linking and account creation as for OIDC.
	AllowEmailDomains []string `json:"allow_email_domains,omitempty"`
	AllowGroups       []string `json:"allow_groups,omitempty"`
	AllowSubjects     []string `json:"allow_subjects,omitempty"`
	LinkByEmail       bool     `json:"link_by_email,omitempty"`
	NoAccountCreation bool     `json:"no_account_creation,omitempty"`
}
