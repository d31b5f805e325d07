package audit

// Event types of the audit log (storage.AuditEvent.Type). Every event the
// server records uses one of these names; a new event is added here.
const (
	// Tokens and codes (authorization server).
	CodeIssued    = "code.issued"
	CodeReplay    = "code.replay" // a used code presented again; its grant revoked
	TokenIssued   = "token.issued"
	TokenRevoke   = "token.revoke" // RFC 7009 revocation request
	TokenRefused  = "token.refused"
	RefreshReuse  = "refresh.reuse" // the family revoked
	AuthzRefused  = "authorize.refused"
	RevokeRefused = "revoke.refused"
	ConsentGrant  = "consent.granted"
	ConsentDenied = "consent.denied"
	ConsentReused = "consent.reused"
	IDJAGRefused  = "id_jag.refused" // one record per refused ID-JAG (beside the aggregate)

	// Clients.
	ClientRegistered     = "client.registered"
	ClientRegisterRefuse = "client.register_refused"
	ClientEvicted        = "client.evicted"
	ClientExpired        = "client.expired"
	ClientRevoked        = "client.revoked"
	ClientDisabled       = "client.disabled"
	ClientEnabled        = "client.enabled"
	SubjectRevoked       = "subject.revoked"

	// Hosted login and accounts.
	LoginSuccess           = "login.success"
	LoginFailure           = "login.failure"
	Logout                 = "logout"
	Signup                 = "signup"
	CSRFFailure            = "csrf.failure"
	SessionRevoked         = "session.revoked"
	AccountCreated         = "account.created"
	AccountLinked          = "account.linked"
	AccountPasswordChanged = "account.password_changed"
	AccountEmailVerify     = "account.email_verification"
	AccountEmailVerified   = "account.email_verified"
	AccountDisabled        = "account.disabled"
	AccountEnabled         = "account.enabled"
	AccountRefused         = "account.refused"    // an upstream sign-in refused for a known account
	GrantDisconnected      = "grant.disconnected" // the user ended a grant on the account page
	GrantDisconnect        = "grant.disconnect"   // a refused disconnect (aggregated)

	// Operator actions.
	KeysRotated = "keys.rotated"
	StoreBackup = "store.backup"
)
