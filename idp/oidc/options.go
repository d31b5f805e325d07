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
	idp.UpstreamButton
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
	idp.UpstreamAccounts
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
		UpstreamConfig: idp.UpstreamConfigOf(o.UpstreamButton, o.UpstreamAccounts),
		Issuer:         env.Expand(o.Issuer),
		ClientID:       env.Expand(o.ClientID),
		ClientSecret:   env.Expand(o.ClientSecret),
		Scopes:         o.Scopes,
		RedirectURL:    env.BaseURL + "/callback",
		Claims: ClaimMapping{Subject: o.ClaimSubject, Email: o.ClaimEmail, EmailVerified: o.ClaimEmailVerified,
			Name: o.ClaimName, Groups: o.ClaimGroups},
		UserInfo: o.UserInfo,
		Store:    env.Store,
		Logger:   env.Logger,
	}
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
	case "scopes":
		return idp.ListArg(name, args, &o.Scopes)
	case "userinfo":
		return idp.FlagArg(name, args, &o.UserInfo)
	}
	return idp.UnknownOption(KindName, name)
}

func (o *Options) stringOption(name string) (*string, bool) {
	p, ok := map[string]*string{
		"issuer":               &o.Issuer,
		"client_id":            &o.ClientID,
		"client_secret":        &o.ClientSecret,
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
