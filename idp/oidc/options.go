package oidc

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpauth/caddy-mcpauth/idp"
)

// Options is an upstream OpenID Connect provider as the operator configures
// it (the JSON of login.oidc and the Caddyfile's oidc block, one
// subdirective per field). Its redirect URI is {issuer origin}/login/{name}/callback.
type Options struct {
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

// KindName is this kind's name in the registry, the Caddyfile and sessions.
const KindName = "oidc"

func init() { idp.RegisterKind(kind{}) }

// kind is the registry entry of OpenID Connect providers.
type kind struct{}

func (kind) Name() string                { return KindName }
func (kind) NewOptions() idp.KindOptions { return new(Options) }

func (kind) Build(ctx context.Context, opts idp.KindOptions, env idp.KindEnv) (idp.Provider, error) {
	o, ok := opts.(*Options)
	if !ok {
		return nil, fmt.Errorf("oidc: options of type %T", opts)
	}
	return New(ctx, o.Config(env))
}

// Config is the provider configuration of these options in env: the
// issuer, client id and secret have their placeholders expanded.
func (o *Options) Config(env idp.KindEnv) Config {
	return Config{
		UpstreamConfig: idp.UpstreamConfig{Name: o.Name, DisplayName: o.DisplayName, IconURL: o.IconURL,
			Allow:       idp.AllowRules{EmailDomains: o.AllowEmailDomains, Groups: o.AllowGroups, Subjects: o.AllowSubjects},
			LinkByEmail: o.LinkByEmail, NoAccountCreation: o.NoAccountCreation},
		Issuer:       env.Expand(o.Issuer),
		ClientID:     env.Expand(o.ClientID),
		ClientSecret: env.Expand(o.ClientSecret),
		Scopes:       o.Scopes,
		RedirectURL:  env.BaseURL + "/callback",
		Claims: ClaimMapping{Subject: o.ClaimSubject, Email: o.ClaimEmail, EmailVerified: o.ClaimEmailVerified,
			Name: o.ClaimName, Groups: o.ClaimGroups},
		UserInfo: o.UserInfo,
		Store:    env.Store,
		Logger:   env.Logger,
	}
}

// ProviderName implements idp.KindOptions.
func (o *Options) ProviderName() string { return o.Name }

// SetProviderName implements idp.KindOptions.
func (o *Options) SetProviderName(name string) { o.Name = name }

// SetOption implements idp.KindOptions: one subdirective per JSON field.
func (o *Options) SetOption(name string, args []string) error {
	if s, ok := o.stringOption(name); ok {
		return idp.StringArg(name, args, s)
	}
	switch name {
	case "scopes":
		return idp.ListArg(name, args, &o.Scopes)
	case "allow_email_domains":
		return idp.ListArg(name, args, &o.AllowEmailDomains)
	case "allow_groups":
		return idp.ListArg(name, args, &o.AllowGroups)
	case "allow_subjects":
		return idp.ListArg(name, args, &o.AllowSubjects)
	case "userinfo":
		return idp.FlagArg(name, args, &o.UserInfo)
	case "link_by_email":
		return idp.FlagArg(name, args, &o.LinkByEmail)
	case "no_account_creation":
		return idp.FlagArg(name, args, &o.NoAccountCreation)
	}
	return idp.UnknownOption(KindName, name)
}

func (o *Options) stringOption(name string) (*string, bool) {
	p, ok := map[string]*string{
		"issuer":               &o.Issuer,
		"client_id":            &o.ClientID,
		"client_secret":        &o.ClientSecret,
		"display_name":         &o.DisplayName,
		"icon_url":             &o.IconURL,
		"claim_subject":        &o.ClaimSubject,
		"claim_email":          &o.ClaimEmail,
		"claim_email_verified": &o.ClaimEmailVerified,
		"claim_name":           &o.ClaimName,
		"claim_groups":         &o.ClaimGroups,
	}[name]
	return p, ok
}

// Validate implements idp.KindOptions. Everything else (issuer URL, client
// id) is checked by New, where placeholders are expanded.
func (o *Options) Validate() error {
	if o.Name == "" {
		return errors.New("oidc: a provider needs a name")
	}
	return nil
}
