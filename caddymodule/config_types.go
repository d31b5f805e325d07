package caddymodule

import (
	"github.com/mcpauth/caddy-mcpauth/config"
)

// The JSON config types live in package config; the Caddyfile parsing of
// this package names them by their old names.
type (
	StorageConfig        = config.Storage
	ClientConfig         = config.Client
	LoginConfig          = config.Login
	UserConfig           = config.User
	SMTPConfig           = config.SMTP
	CIMDConfig           = config.CIMD
	CIMDClientPolicy     = config.CIMDClientPolicy
	CIMDRate             = config.CIMDRate
	DCRConfig            = config.DCR
	ResourceIndicators   = config.ResourceIndicators
	EnterpriseIdPConfig  = config.EnterpriseIdP
	WorkloadIssuerConfig = config.WorkloadIssuer
	DPoPConfig           = config.DPoP
	IdentityHeaders      = config.IdentityHeaders
	ToolLimit            = config.ToolLimit
	OIDCProvider         = config.OIDCProvider
	SAMLProvider         = config.SAMLProvider
	UpstreamProvider     = config.UpstreamProvider
)
