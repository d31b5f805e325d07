package oauth

// Grant types (RFC 6749 §4.1 and §6; OAuth 2.1 §4.1 and §4.3).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
)

// ResponseTypeCode is the only response type served (OAuth 2.1 §4.1.1).
const ResponseTypeCode = "code"

// Token endpoint authentication methods (RFC 7591 §2, RFC 7523 §2.2).
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
	AuthMethodPrivateKeyJWT     = "private_key_jwt"
)
