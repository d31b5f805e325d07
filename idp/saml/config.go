package saml

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/internal/upstream"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Config configures one upstream SAML 2.0 identity provider.
type Config struct {
	// UpstreamConfig is the provider's name, button and sign-in policy
	// (email-domain rules and LinkByEmail need TrustEmail).
	idp.UpstreamConfig
	// BaseURL is the absolute URL of this provider's routes:
	// idp.ProviderBaseURL(publicURL, pathPrefix, Name), e.g.
	// https://auth.example.com/login/okta. The ACS is BaseURL+"/acs", our
	// metadata BaseURL+"/metadata". Required.
	BaseURL string
	// IdPMetadataURL is where the IdP publishes its metadata (https; http
	// only on loopback). Exactly one of IdPMetadataURL, IdPMetadataFile and
	// IdPMetadata is required.
	IdPMetadataURL string
	// IdPMetadataFile is a file holding the IdP's metadata XML.
	IdPMetadataFile string
	// IdPMetadata is the IdP's metadata XML itself.
	IdPMetadata []byte
	// EntityID is our SP entity id, the audience the IdP must put in its
	// assertions. Default: BaseURL+"/metadata".
	EntityID string
	// SPCertificatePEM and SPKeyPEM are our SP signing/decryption key pair
	// (PEM; the key PKCS#8, PKCS#1 or EC). When both are empty the key is
	// loaded from KeyStore, or generated (RSA 2048, self-signed, 10 years)
	// and saved there.
	SPCertificatePEM []byte
	SPKeyPEM         []byte
	// KeyStore persists the generated SP key pair. certmagic.Storage (Caddy's
	// storage) satisfies it; so does DirKeyStore.
	KeyStore KeyStore
	// MetadataValidity is how long our SP metadata says it is valid
	// (validUntil). Some IdPs (SimpleSAMLphp's metarefresh)
	// stop trusting the SP when it passes, so they must refresh from our
	// metadata URL. Default 48h; 1h to 365 days.
	MetadataValidity time.Duration
	// Binding forces the binding of our AuthnRequest: "redirect" or "post".
	// Default: HTTP-Redirect when the IdP offers it, else HTTP-POST.
	Binding string
	// Attributes maps assertion attributes to the identity.
	Attributes AttributeMapping
	// TrustEmail treats the email this IdP asserts as verified (SAML has no
	// email_verified). Only for an IdP that controls its users' addresses
	// (a company directory): email-domain allow rules and email linking
	// need a verified email.
	TrustEmail bool
	// AcceptResponseSignature also accepts an assertion covered only by the
	// Response's signature (Keycloak's default "sign documents"). By default
	// the assertion itself must be signed.
	AcceptResponseSignature bool
	// Store holds the single-use request tickets (the idp's store).
	Store storage.Tickets
	// HTTPClient fetches IdPMetadataURL (default: 15s timeout).
	HTTPClient *http.Client
	// Now is the clock for our own validity checks (default time.Now).
	// crewjam/saml also checks IssueInstant and the validity windows
	// against the real clock.
	Now func() time.Time
	// Logger receives operational logs (nil: discarded; the caller injects
	// its logger, there is no global fallback).
	Logger *slog.Logger
}

// AttributeMapping names the attributes (Name or FriendlyName) that carry
// each value. Empty fields use common names (see defaults).
type AttributeMapping struct {
	// Subject is an attribute holding a stable user id; default: the
	// assertion's NameID (configure a persistent NameID at the IdP).
	Subject string
	Email   string
	Name    string
	Groups  string
}

// Default attribute names (Name or FriendlyName), most common first: LDAP
// and eduPerson OIDs, Entra ID/ADFS claim URIs, Okta/Keycloak short names.
var (
	defaultEmailAttrs = []string{"email", "mail", "urn:oid:0.9.2342.19200300.100.1.3", "emailAddress",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"}
	defaultNameAttrs = []string{"displayName", "name", "cn", "urn:oid:2.16.840.1.113730.3.1.241", "urn:oid:2.5.4.3",
		"http://schemas.microsoft.com/identity/claims/displayname", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"}
	defaultGroupAttrs = []string{"groups", "memberOf", "Role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
		"urn:oid:1.3.6.1.4.1.5923.1.1.1.1"}
)

// KeyStore persists small blobs (idp.KeyStore, which idp.KindEnv carries).
// Load returns an error wrapping fs.ErrNotExist or storage.ErrNotFound when
// key is absent.
type KeyStore = idp.KeyStore

const (
	defaultTimeout  = 15 * time.Second
	requestTTL      = 10 * time.Minute
	clockSkew       = 2 * time.Minute
	maxMetadata     = 1 << 20
	maxResponseForm = 1 << 20

	defaultMetadataValidity = 48 * time.Hour
	minMetadataValidity     = time.Hour
	maxMetadataValidity     = 365 * 24 * time.Hour
)

func (c *Config) validate() error {
	if err := c.UpstreamConfig.Check("saml"); err != nil {
		return err
	}
	bu, err := url.Parse(c.BaseURL)
	if err != nil || bu.Host == "" || bu.User != nil || bu.RawQuery != "" || bu.Fragment != "" || !upstream.SecureURL(bu) ||
		!strings.HasSuffix(bu.Path, "/login/"+c.Name) {
		return fmt.Errorf("saml: %s: base URL %q must be the https URL {public URL}{prefix}/login/%s", c.Name, c.BaseURL, c.Name)
	}
	n := 0
	for _, s := range []bool{c.IdPMetadataURL != "", c.IdPMetadataFile != "", len(c.IdPMetadata) > 0} {
		if s {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("saml: %s: set exactly one of idp metadata URL, file or document", c.Name)
	}
	if c.IdPMetadataURL != "" {
		mu, err := url.Parse(c.IdPMetadataURL)
		if err != nil || mu.Host == "" || mu.User != nil || !upstream.SecureURL(mu) {
			return fmt.Errorf("saml: %s: idp metadata URL %q must be https (http only on loopback)", c.Name, c.IdPMetadataURL)
		}
	}
	if c.EntityID == "" {
		c.EntityID = c.BaseURL + "/metadata"
	}
	if len(c.EntityID) > 1024 || strings.ContainsAny(c.EntityID, " \"<>") {
		return fmt.Errorf("saml: %s: invalid entity id %q", c.Name, c.EntityID)
	}
	if (len(c.SPCertificatePEM) == 0) != (len(c.SPKeyPEM) == 0) {
		return fmt.Errorf("saml: %s: set both the SP certificate and key, or neither", c.Name)
	}
	if len(c.SPKeyPEM) == 0 && c.KeyStore == nil {
		return fmt.Errorf("saml: %s: an SP key pair or a key store is required", c.Name)
	}
	switch {
	case c.MetadataValidity == 0:
		c.MetadataValidity = defaultMetadataValidity
	case c.MetadataValidity < minMetadataValidity || c.MetadataValidity > maxMetadataValidity:
		return fmt.Errorf("saml: %s: metadata validity %s must be between 1h and 8760h", c.Name, c.MetadataValidity)
	}
	switch c.Binding {
	case "", "redirect", "post":
	default:
		return fmt.Errorf("saml: %s: binding %q must be redirect or post", c.Name, c.Binding)
	}
	if c.Store == nil {
		return fmt.Errorf("saml: %s: store is required", c.Name)
	}
	if c.LinkByEmail && !c.TrustEmail {
		return fmt.Errorf("saml: %s: link by email needs trust_email (SAML asserts no email_verified)", c.Name)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: defaultTimeout}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
