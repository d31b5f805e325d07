package saml

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mcpauth/caddy-mcpauth/idp"
)

// Options is an upstream SAML 2.0 identity provider as the operator
// configures it (the JSON of login.saml and the Caddyfile's saml block, one
// subdirective per field). Our SP entity id is
// {issuer origin}/login/{name}/metadata (also where our metadata is served)
// and the ACS is {issuer origin}/login/{name}/acs (HTTP-POST).
type Options struct {
	idp.UpstreamButton
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
	MetadataValidity idp.Duration `json:"metadata_validity,omitempty"`
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
	idp.UpstreamAccounts
}

// KindName is this kind's name in the registry, the Caddyfile and sessions.
const KindName = "saml"

func init() { idp.RegisterKind(kind{}) }

// kind is the registry entry of SAML providers.
type kind struct{}

func (kind) Name() string                { return KindName }
func (kind) NewOptions() idp.KindOptions { return new(Options) }

func (kind) Build(ctx context.Context, opts idp.KindOptions, env idp.KindEnv) (idp.Provider, error) {
	o, ok := opts.(*Options)
	if !ok {
		return nil, fmt.Errorf("saml: options of type %T", opts)
	}
	cfg, err := o.Config(env)
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg)
}

// Config is the provider configuration of these options in env: the
// metadata URL has its placeholders expanded and the SP key pair, when
// given as files, is read.
func (o *Options) Config(env idp.KindEnv) (Config, error) {
	cfg := Config{
		UpstreamConfig:          idp.UpstreamConfigOf(o.UpstreamButton, o.UpstreamAccounts),
		BaseURL:                 env.BaseURL,
		IdPMetadataURL:          env.Expand(o.IdPMetadataURL),
		IdPMetadataFile:         o.IdPMetadataFile,
		EntityID:                o.EntityID,
		KeyStore:                env.KeyStore,
		Binding:                 o.Binding,
		MetadataValidity:        time.Duration(o.MetadataValidity),
		Attributes:              AttributeMapping{Subject: o.AttrSubject, Email: o.AttrEmail, Name: o.AttrName, Groups: o.AttrGroups},
		TrustEmail:              o.TrustEmail,
		AcceptResponseSignature: o.AcceptResponseSignature,
		Store:                   env.Store,
		Logger:                  env.Logger,
	}
	if o.SPCertFile != "" || o.SPKeyFile != "" {
		cert, err := os.ReadFile(o.SPCertFile)
		if err != nil {
			return Config{}, fmt.Errorf("sp_cert_file: %w", err)
		}
		key, err := os.ReadFile(o.SPKeyFile)
		if err != nil {
			return Config{}, fmt.Errorf("sp_key_file: %w", err)
		}
		cfg.SPCertificatePEM, cfg.SPKeyPEM = cert, key
	}
	return cfg, nil
}

// SetOption implements idp.KindOptions: one subdirective per JSON field.
func (o *Options) SetOption(name string, args []string) error {
	if s, ok := o.stringOption(name); ok {
		return idp.StringArg(name, args, s)
	}
	if ok, err := o.SetButtonOption(name, args); ok {
		return err
	}
	if ok, err := o.SetAccountOption(name, args); ok {
		return err
	}
	switch name {
	case "binding":
		var b string
		if err := idp.StringArg(name, args, &b); err != nil {
			return err
		}
		if b != "redirect" && b != "post" {
			return fmt.Errorf("binding %q: use redirect or post", b)
		}
		o.Binding = b
		return nil
	case "metadata_validity":
		return idp.DurationArg(name, args, &o.MetadataValidity)
	case "trust_email":
		return idp.FlagArg(name, args, &o.TrustEmail)
	case "accept_response_signature":
		return idp.FlagArg(name, args, &o.AcceptResponseSignature)
	}
	return idp.UnknownOption(KindName, name)
}

func (o *Options) stringOption(name string) (*string, bool) {
	p, ok := map[string]*string{
		"idp_metadata_url":  &o.IdPMetadataURL,
		"idp_metadata_file": &o.IdPMetadataFile,
		"entity_id":         &o.EntityID,
		"sp_cert_file":      &o.SPCertFile,
		"sp_key_file":       &o.SPKeyFile,
		"attr_subject":      &o.AttrSubject,
		"attr_email":        &o.AttrEmail,
		"attr_name":         &o.AttrName,
		"attr_groups":       &o.AttrGroups,
	}[name]
	return p, ok
}

// Validate implements idp.KindOptions: a name and exactly one metadata
// source. The rest is checked by New.
func (o *Options) Validate() error {
	if o.Name == "" {
		return errors.New("saml: a provider needs a name")
	}
	if (o.IdPMetadataURL == "") == (o.IdPMetadataFile == "") {
		return fmt.Errorf("saml %s: give exactly one of idp_metadata_url and idp_metadata_file", o.Name)
	}
	return nil
}
