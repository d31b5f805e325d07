package oauth

// Grant types served (RFC 6749 §4.1, §4.4 and §6; RFC 7523 §2.1; OAuth 2.1 §4.1 and §4.3).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	// GrantClientCredentials is the client credentials grant (RFC 6749
	// §4.4; requirement 23).
	GrantClientCredentials = "client_credentials"
	// GrantJWTBearer is the JWT bearer grant (RFC 7523 §2.1), which
	// carries ID-JAGs (requirement 24).
	GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
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
