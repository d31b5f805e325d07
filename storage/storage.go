package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Backends return them (possibly wrapped with %w); callers
// compare with errors.Is.
var (
	// ErrNotFound: no record with that key (or it has expired).
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists: a create collided with an existing key or unique index.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrConflict: a compare-and-swap lost (the expected state no longer holds).
	ErrConflict = errors.New("storage: conflict")
	// ErrCodeUsed: the authorization code was consumed before. The record is
	// returned beside it so the caller can revoke what the first redemption
	// produced.
	ErrCodeUsed = errors.New("storage: code already used")
	// ErrRefreshReused: a refresh token was presented after it stopped being
	// valid. The backend has already revoked the whole grant family in the same
	// transaction; the grant is returned beside it for auditing.
	ErrRefreshReused = errors.New("storage: refresh token reused")
	// ErrGrantRevoked: the grant exists but was revoked.
	ErrGrantRevoked = errors.New("storage: grant revoked")
	// ErrReplayed: a single-use identifier (a JWT "jti") was used before and
	// its record has not expired.
	ErrReplayed = errors.New("storage: already used")
)

// ClientKind says how a client came to be known.
type ClientKind string

const (
	ClientOwned ClientKind = "owned" // seeded from config or added by the operator
	ClientCIMD  ClientKind = "cimd"  // client_id is an https URL to a metadata document
	ClientDCR   ClientKind = "dcr"   // registered through RFC 7591
)

// Client is an OAuth client known to the authorization server.
type Client struct {
	ID           string     `json:"id"`
	Kind         ClientKind `json:"kind"`
	Name         string     `json:"name"`
	RedirectURIs []string   `json:"redirect_uris"`
	// GrantTypes the client may use (authorization_code, refresh_token).
	GrantTypes []string `json:"grant_types,omitempty"`
	// Scopes the client may ask for; empty means every scope the server offers.
	Scopes []string `json:"scopes,omitempty"`
	// DefaultScopes apply when a request carries no scope.
	DefaultScopes []string `json:"default_scopes,omitempty"`
	// DefaultAudience is the client-audience fallback (RFC 8707 knob).
	DefaultAudience string `json:"default_audience,omitempty"`
	// AccessTokenTTL and RefreshTokenTTL override the server's lifetimes when non-zero.
	AccessTokenTTL  time.Duration `json:"access_token_ttl,omitempty"`
	RefreshTokenTTL time.Duration `json:"refresh_token_ttl,omitempty"`
	// TokenEndpointAuthMethod is "none" for public clients,
	// "client_secret_basic" / "client_secret_post" for confidential owned
	// clients, or "private_key_jwt" (owned and CIMD clients with keys).
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
	// SecretHash is a PHC-format hash of the client secret (confidential owned clients only).
	SecretHash string `json:"secret_hash,omitempty"`
	// JWKSURI and JWKS are the public keys of a "private_key_jwt" client
	// (RFC 7523 §2.2, RFC 7591 §2): a URL fetched under the CIMD fetcher's
	// rules, or an inline JWK set. Exactly one is set for such a client.
	JWKSURI string          `json:"jwks_uri,omitempty"`
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	// TokenEndpointAuthSigningAlg, when set, is the only JWS algorithm
	// accepted for the client's assertions (RFC 7591 §2).
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	// SkipConsent lets an owned client skip the consent page.
	SkipConsent bool `json:"skip_consent,omitempty"`
	Disabled    bool `json:"disabled,omitempty"`
	// Fingerprint is a hash of the consent-relevant metadata (name, redirect
	// URIs); a change asks for fresh consent.
	Fingerprint string `json:"fingerprint,omitempty"`
	LogoURI     string `json:"logo_uri,omitempty"`
	ClientURI   string `json:"client_uri,omitempty"`
	SoftwareID  string `json:"software_id,omitempty"`
	// Predecessors are earlier DCR clients registered with the same
	// metadata (fingerprint and software id, every redirect URI https on a
	// public name), newest first: a remembered consent given to one of them
	// may be reused by this client (the authorization server checks them
	// again when it does).
	Predecessors []string `json:"predecessors,omitempty"`
	// RegisteredFrom is the client IP that registered a DCR client (audit aid).
	RegisteredFrom string    `json:"registered_from,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// LastUsedAt is updated at most once per hour per client (stale-client cleanup).
	LastUsedAt time.Time `json:"last_used_at,omitempty"`
}

// AuthCode is an authorization code, stored under the SHA-256 of its value.
type AuthCode struct {
	Hash                []byte    `json:"-"`
	ClientID            string    `json:"client_id"`
	RedirectURI         string    `json:"redirect_uri"`
	CodeChallenge       string    `json:"code_challenge"`
	CodeChallengeMethod string    `json:"code_challenge_method"`
	Subject             string    `json:"sub"`
	Scopes              []string  `json:"scopes"`
	Resource            string    `json:"resource"`
	AuthTime            time.Time `json:"auth_time"`
	// Tools is the tool snapshot of the consent (the tools the scopes
	// unlocked at the resource when the user approved), sorted.
	Tools []string `json:"tools,omitempty"`
	// GrantID is fixed when the code is minted, so a replay can revoke exactly
	// what the first redemption produced.
	GrantID   string    `json:"grant_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// UsedAt is set by RedeemCode; zero while unused.
	UsedAt time.Time `json:"used_at,omitempty"`
}

// Grant is one authorization: a user's consent to a client for scopes and a
// resource. Its refresh tokens form a family; revoking the grant ends them all
// and makes the guard refuse the access tokens minted from it (claim "sid").
type Grant struct {
	ID       string    `json:"id"`
	ClientID string    `json:"client_id"`
	Subject  string    `json:"sub"`
	Scopes   []string  `json:"scopes"`
	Resource string    `json:"resource"`
	AuthTime time.Time `json:"auth_time"`
	// Tools is the tool snapshot the grant was consented with (EMA §7.2.1
	// "tool snapshot tracking"): its access tokens may call these tools of
	// the resource's tool map and no other, sorted.
	Tools []string `json:"tools,omitempty"`
	// RefreshHash is the SHA-256 of the current refresh token (nil: no refresh token).
	RefreshHash []byte `json:"refresh_hash,omitempty"`
	// PreviousHash is the token that RefreshHash replaced. It may be
	// redeemed once more, within the rotation's grace after
	// PreviousRetiredAt, while RefreshHash is unused (covers a lost
	// response; see RotateGrant).
	PreviousHash []byte `json:"previous_hash,omitempty"`
	// PreviousRetiredAt is when PreviousHash stopped being current.
	PreviousRetiredAt time.Time `json:"previous_retired_at,omitzero"`
	// PreviousUsed records that PreviousHash had its one lost-response
	// retry: presenting it again is reuse.
	PreviousUsed bool `json:"previous_used,omitempty"`
	// Generation counts rotations.
	Generation int       `json:"generation"`
	CreatedAt  time.Time `json:"created_at"`
	// RefreshExpiresAt ends the current refresh token (sliding, set at rotation).
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitempty"`
	// ExpiresAt ends the whole family (absolute).
	ExpiresAt     time.Time `json:"expires_at"`
	RevokedAt     time.Time `json:"revoked_at,omitempty"`
	RevokedReason string    `json:"revoked_reason,omitempty"`
	// DPoPJKT, when set, binds the refresh tokens to a DPoP key (the RFC
	// 7638 thumbprint): a refresh must prove possession of it (RFC 9449 §5).
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

// Revoked reports whether the grant was revoked.
func (g Grant) Revoked() bool { return !g.RevokedAt.IsZero() }

// Rotation is a refresh-token rotation request.
type Rotation struct {
	// Presented is the SHA-256 of the refresh token the client sent.
	Presented []byte
	// Next is the SHA-256 of the refresh token to issue.
	Next []byte
	// Now is the time of the request; NextExpiresAt the new token's end.
	Now           time.Time
	NextExpiresAt time.Time
	// Grace is how long after its rotation the previous token may be
	// redeemed, once, by a client that lost the response (requirement 37).
	// Zero is strict rotation: any use of the previous token is reuse.
	Grace time.Duration
	// Check runs inside the transaction on the grant found, before anything
	// is written (client binding, scope, expiry). An error aborts the rotation
	// with no state change and is returned as is.
	Check func(Grant) error
}

// SigningKey is a private signing key. It is published in the JWKS from
// its creation; the newest key whose ActivatedAt has passed and whose
// RetiredAt has not signs (a key created with a later ActivatedAt is
// published but inactive until then: pre-publication). Retired keys stay
// published in the JWKS until PublishUntil.
type SigningKey struct {
	ID        string `json:"kid"`
	Algorithm string `json:"alg"`
	// PrivateJWK is the private key as a JSON Web Key, or that JWK
	// encrypted at rest by the authorization server (opaque to storage).
	PrivateJWK []byte    `json:"private_jwk"`
	CreatedAt  time.Time `json:"created_at"`
	// ActivatedAt is when the key starts signing; zero means CreatedAt.
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	// RetiredAt is when the key stops signing (it may lie in the future:
	// the activation of the key that replaces it).
	RetiredAt    time.Time `json:"retired_at,omitempty"`
	PublishUntil time.Time `json:"publish_until,omitempty"`
}

// Activation returns when the key starts signing: ActivatedAt, or
// CreatedAt when that is zero.
func (k SigningKey) Activation() time.Time {
	if k.ActivatedAt.IsZero() {
		return k.CreatedAt
	}
	return k.ActivatedAt
}

// Consent is a remembered consent, bound to user, client, scopes, resource
// and the client's metadata fingerprint.
type Consent struct {
	Subject  string   `json:"sub"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	Resource string   `json:"resource"`
	// Tools is the tool snapshot the user saw and approved, sorted.
	Tools       []string  `json:"tools,omitempty"`
	Fingerprint string    `json:"fingerprint"`
	GrantedAt   time.Time `json:"granted_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Account is a local user account. ID is the stable subject of its tokens.
type Account struct {
	ID            string `json:"id"`
	Email         string `json:"email"` // normalized lower-case; unique
	Name          string `json:"name,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	// PasswordHash is an argon2id PHC string; empty for accounts that only
	// sign in upstream.
	PasswordHash      string    `json:"password_hash,omitempty"`
	Groups            []string  `json:"groups,omitempty"`
	Disabled          bool      `json:"disabled,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	PasswordChangedAt time.Time `json:"password_changed_at,omitempty"`
}

// Session is a browser session, stored under the SHA-256 of its id.
type Session struct {
	Hash       []byte    `json:"-"`
	AccountID  string    `json:"account_id"`
	Method     string    `json:"method"`       // "password", "oidc:<name>", "saml:<name>"
	CSRFSecret []byte    `json:"csrf_secret"`  // per-session CSRF key
	CreatedAt  time.Time `json:"created_at"`   // absolute timeout counts from here
	LastSeenAt time.Time `json:"last_seen_at"` // idle timeout counts from here
	ExpiresAt  time.Time `json:"expires_at"`   // absolute end
	UserAgent  string    `json:"user_agent,omitempty"`
}

// Ticket is a short-lived, single-use record: upstream OIDC state and nonce,
// SAML request ids, pending login attempts. Stored under the SHA-256 of its key.
type Ticket struct {
	Kind      string    `json:"kind"`
	Hash      []byte    `json:"-"`
	Value     []byte    `json:"value"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EmailVerification is a pending verification of an account's email
// address, stored under the SHA-256 of the single-use token mailed in the
// verification link (the token itself is never stored).
type EmailVerification struct {
	Hash      []byte `json:"-"`
	AccountID string `json:"account_id"`
	// Email is the address the link was mailed to: the verification holds
	// only while the account still has this email.
	Email string `json:"email"`
	// PasswordHash is the argon2id PHC hash of the password chosen in the
	// signup that sent the link: confirming the link asks for that password
	// and sets it on the account.
	PasswordHash string    `json:"password_hash,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// AuditEvent is one entry of the audit log. It never carries a token, code,
// secret or password.
type AuditEvent struct {
	// ID orders events; backends assign it when empty (time-ordered, unique).
	ID       string            `json:"id"`
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"` // e.g. "login.failure", "token.issued", "refresh.reuse"
	Outcome  string            `json:"outcome,omitempty"`
	Subject  string            `json:"sub,omitempty"`
	ClientID string            `json:"client_id,omitempty"`
	IP       string            `json:"ip,omitempty"`
	Detail   map[string]string `json:"detail,omitempty"`
}

// AuditQuery selects audit events, newest first.
type AuditQuery struct {
	Since    time.Time
	Type     string // prefix match when it ends in "."
	ClientID string
	Subject  string
	Limit    int // 0 = 100
}

// Clients stores OAuth clients.
type Clients interface {
	GetClient(ctx context.Context, id string) (Client, error)
	// PutClient creates or replaces a client.
	PutClient(ctx context.Context, c Client) error
	// CreateClient creates a client; ErrAlreadyExists when the id is taken.
	CreateClient(ctx context.Context, c Client) error
	DeleteClient(ctx context.Context, id string) error
	ListClients(ctx context.Context) ([]Client, error)
	// SetClientDisabled flips the disabled flag; ErrNotFound for unknown ids.
	SetClientDisabled(ctx context.Context, id string, disabled bool, now time.Time) error
	// TouchClient records use (LastUsedAt).
	TouchClient(ctx context.Context, id string, now time.Time) error
}

// Codes stores authorization codes.
type Codes interface {
	SaveCode(ctx context.Context, c AuthCode) error
	// RedeemCode marks the code used and, in the same transaction, lets issue
	// turn it into a grant. Unknown or expired codes: ErrNotFound. A code used
	// before: its record and ErrCodeUsed (issue is not called). When issue
	// returns an error the code stays used (burned) and nothing else is
	// written; the error is returned. When issue returns a grant it is created
	// in the same transaction (one write per exchange).
	RedeemCode(ctx context.Context, hash []byte, now time.Time, issue func(AuthCode) (*Grant, error)) (AuthCode, error)
}

// Grants stores grants and their refresh-token families.
type Grants interface {
	CreateGrant(ctx context.Context, g Grant) error
	GetGrant(ctx context.Context, id string) (Grant, error)
	// RotateRefresh swaps the refresh token atomically, deciding with
	// RotateGrant. Presented must be the grant's current token, or its
	// previous token once within r.Grace (a lost response; the unused current
	// token is replaced). Any other use of a token of the family is reuse:
	// the grant is revoked in the same transaction and ErrRefreshReused
	// returned with it. Unknown tokens: ErrNotFound. Revoked grants:
	// ErrGrantRevoked. Expired: ErrNotFound.
	RotateRefresh(ctx context.Context, r Rotation) (Grant, error)
	// GrantByRefresh finds the grant a refresh token (current, previous or
	// older) belongs to, without changing anything.
	GrantByRefresh(ctx context.Context, hash []byte) (Grant, error)
	RevokeGrant(ctx context.Context, id, reason string, now time.Time) error
	// WidenGrant adds scopes and tools (a step-up the user consented to) to
	// a live grant, atomically, and returns it: the union, never narrower;
	// its refresh tokens stay as they are. Unknown or expired at now:
	// ErrNotFound; revoked: ErrGrantRevoked.
	WidenGrant(ctx context.Context, id string, scopes, tools []string, now time.Time) (Grant, error)
	RevokeClientGrants(ctx context.Context, clientID, reason string, now time.Time) (int, error)
	RevokeSubjectGrants(ctx context.Context, subject, reason string, now time.Time) (int, error)
	// ListGrants returns grants of a client or subject (either may be empty).
	ListGrants(ctx context.Context, clientID, subject string) ([]Grant, error)
}

// Keys stores signing keys.
type Keys interface {
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// AddSigningKey inserts key and retires every other unretired key (setting
	// RetiredAt=key.Activation(), so a pre-published key takes over at its
	// ActivatedAt with no further write, and PublishUntil=publishUntil), but
	// only when the newest unretired key id still equals expectActive ("" =
	// none). Otherwise ErrConflict: another instance rotated first. A key
	// whose ActivatedAt is before its CreatedAt is refused.
	AddSigningKey(ctx context.Context, key SigningKey, expectActive string, publishUntil time.Time) error
	// DeleteSigningKey removes a retired key (after PublishUntil).
	DeleteSigningKey(ctx context.Context, kid string) error
	// RewrapSigningKey replaces the PrivateJWK of key kid (the same private
	// key, encrypted at rest anew) when it still equals expect, and nothing
	// else: ErrNotFound for an unknown kid, ErrConflict when the stored
	// material differs (another instance rewrapped it first).
	RewrapSigningKey(ctx context.Context, kid string, expect, replacement []byte) error
}

// Consents stores remembered consents.
type Consents interface {
	GetConsent(ctx context.Context, subject, clientID string) (Consent, error)
	PutConsent(ctx context.Context, c Consent) error
	DeleteConsent(ctx context.Context, subject, clientID string) error
	DeleteClientConsents(ctx context.Context, clientID string) (int, error)
}

// Accounts stores local user accounts and their links to upstream identities.
type Accounts interface {
	// CreateAccount fails with ErrAlreadyExists when the id or email is taken.
	CreateAccount(ctx context.Context, a Account) error
	GetAccount(ctx context.Context, id string) (Account, error)
	GetAccountByEmail(ctx context.Context, email string) (Account, error)
	// UpdateAccount replaces an existing account (ErrNotFound otherwise),
	// keeping the email index consistent (ErrAlreadyExists on collision).
	UpdateAccount(ctx context.Context, a Account) error
	ListAccounts(ctx context.Context) ([]Account, error)
	// LinkIdentity binds (provider, subject) to an account; ErrAlreadyExists
	// when that pair is linked to another account.
	LinkIdentity(ctx context.Context, provider, subject, accountID string) error
	AccountByIdentity(ctx context.Context, provider, subject string) (Account, error)
}

// Sessions stores browser sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, hash []byte) (Session, error)
	// TouchSession moves LastSeenAt forward.
	TouchSession(ctx context.Context, hash []byte, now time.Time) error
	DeleteSession(ctx context.Context, hash []byte) error
	DeleteAccountSessions(ctx context.Context, accountID string) (int, error)
}

// Tickets stores single-use short-lived records.
type Tickets interface {
	PutTicket(ctx context.Context, t Ticket) error
	// TakeTicket returns and deletes the ticket atomically; ErrNotFound when
	// it is unknown, of another kind, already taken or expired.
	TakeTicket(ctx context.Context, kind string, hash []byte, now time.Time) (Ticket, error)
}

// EmailVerifications stores pending email verifications (signup links).
type EmailVerifications interface {
	// SaveEmailVerification stores v under v.Hash; ErrAlreadyExists when
	// the hash is taken (the stored one is left as it is).
	SaveEmailVerification(ctx context.Context, v EmailVerification) error
	// GetEmailVerification returns a pending verification without using it
	// up; ErrNotFound when it is unknown, used or expired at now.
	GetEmailVerification(ctx context.Context, hash []byte, now time.Time) (EmailVerification, error)
	// ConsumeEmailVerification deletes the verification and, in the same
	// transaction, every other pending verification of its account (one
	// verified link retires the older ones), and returns it. ErrNotFound
	// when it is unknown, used or expired at now: exactly one of concurrent
	// consumers wins. A refused call changes nothing (DeleteExpired removes
	// expired verifications).
	ConsumeEmailVerification(ctx context.Context, hash []byte, now time.Time) (EmailVerification, error)
}

// Replays records single-use identifiers of signed assertions (the "jti" of
// RFC 7523 client assertions, ID-JAGs, workload tokens) until they expire, so
// that a replay is refused on every instance sharing the store.
type Replays interface {
	// UseOnce records hash (the SHA-256 of the issuer and identifier) as used
	// until expiresAt. ErrReplayed when it is recorded and not expired at now
	// (the record is left as it is); an expired record is replaced. Exactly
	// one of concurrent callers with the same hash succeeds.
	UseOnce(ctx context.Context, hash []byte, expiresAt, now time.Time) error
}

// Audit stores the audit log.
type Audit interface {
	AppendAudit(ctx context.Context, events ...AuditEvent) error
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
}

// Maintenance removes what has expired.
type Maintenance interface {
	// DeleteExpired removes expired codes, grants, sessions, tickets, email
	// verifications, consents and used assertion identifiers, and audit events older than auditBefore (zero: keep all).
	DeleteExpired(ctx context.Context, now, auditBefore time.Time) (int, error)
}

// Backend is everything a storage backend implements. Consumers depend on
// the narrow roles above, never on Backend.
type Backend interface {
	Clients
	Codes
	Grants
	Keys
	Consents
	Accounts
	Sessions
	Tickets
	EmailVerifications
	Replays
	Audit
	Maintenance
	// Close releases the backend's resources.
	Close() error
}

// Record kinds of a snapshot, in the order Export emits them (and Import
// expects them): a record only refers to kinds before it (an identity to
// its account; a code or grant to nothing that must exist first).
const (
	KindClient     = "client"
	KindSigningKey = "signing_key"
	KindAccount    = "account"
	KindIdentity   = "identity"
	KindConsent    = "consent"
	KindGrant      = "grant"
	KindCode       = "code"
	KindSession    = "session"
	KindTicket     = "ticket"
	KindAudit      = "audit"
)

// RecordKinds lists every record kind in export order.
var RecordKinds = []string{
	KindClient, KindSigningKey, KindAccount, KindIdentity, KindConsent,
	KindGrant, KindCode, KindSession, KindTicket, KindAudit,
}

// ErrNotEmpty: Import refuses a destination that already holds records.
var ErrNotEmpty = errors.New("storage: destination store is not empty")

// ErrIncompleteCopy: the store holds a copy that BeginImport started and
// FinishImport never ended (a failed or interrupted migrate-store). Opening
// such a store fails with it, so that no server starts on half the records.
var ErrIncompleteCopy = errors.New("storage: the store holds an unfinished copy (migrate-store did not complete): drop it and run migrate-store again")

// IdentityLink binds an upstream identity (provider, subject) to an account.
type IdentityLink struct {
	Provider  string
	Subject   string
	AccountID string
}

// Record is one exported record: Kind names the one payload field that is
// set. Records are exchanged in memory between backends; the hash keys
// (AuthCode.Hash, Session.Hash, Ticket.Hash) travel in their structs, so a
// Record must not be serialized with encoding/json as is (those fields are
// `json:"-"`).
type Record struct {
	Kind   string
	Client *Client
	Code   *AuthCode // UsedAt kept: a used code stays ErrCodeUsed
	Grant  *Grant
	// RefreshHashes is every refresh token hash ever issued in Grant's
	// family (current, previous and older), so that a retired token
	// presented after the move is still detected as reuse.
	RefreshHashes [][]byte
	Key           *SigningKey
	Consent       *Consent
	Account       *Account
	Identity      *IdentityLink
	Session       *Session
	Ticket        *Ticket
	Audit         *AuditEvent // ID and Time kept; audit records come oldest first
}

// Validate checks that exactly the payload named by Kind is set.
func (r Record) Validate() error {
	set := 0
	for _, p := range []bool{r.Client != nil, r.Code != nil, r.Grant != nil, r.Key != nil,
		r.Consent != nil, r.Account != nil, r.Identity != nil, r.Session != nil,
		r.Ticket != nil, r.Audit != nil} {
		if p {
			set++
		}
	}
	ok := false
	switch r.Kind {
	case KindClient:
		ok = r.Client != nil
	case KindCode:
		ok = r.Code != nil
	case KindGrant:
		ok = r.Grant != nil
	case KindSigningKey:
		ok = r.Key != nil
	case KindConsent:
		ok = r.Consent != nil
	case KindAccount:
		ok = r.Account != nil
	case KindIdentity:
		ok = r.Identity != nil
	case KindSession:
		ok = r.Session != nil
	case KindTicket:
		ok = r.Ticket != nil
	case KindAudit:
		ok = r.Audit != nil
	default:
		return fmt.Errorf("storage: record of unknown kind %q", r.Kind)
	}
	if !ok || set != 1 {
		return fmt.Errorf("storage: %s record must carry exactly its own payload", r.Kind)
	}
	if r.RefreshHashes != nil && r.Kind != KindGrant {
		return fmt.Errorf("storage: %s record carries refresh hashes", r.Kind)
	}
	return nil
}

// Snapshotter is implemented by backends that can move their whole content
// to another backend (caddy-mcpauth mcpauth migrate-store). It is optional:
// consumers test for it with a type assertion.
type Snapshotter interface {
	// Export calls emit with every record, from one consistent snapshot, in
	// RecordKinds order (audit events oldest first). emit must not call the
	// store being exported. An error of emit stops the export and is
	// returned as is.
	Export(ctx context.Context, emit func(Record) error) error
	// Import writes the records next returns until it returns io.EOF, into
	// an empty store (ErrNotEmpty otherwise), all or nothing: on any error
	// nothing is written and the import may simply be run again. Records
	// are written as they are, times, ids and used/revoked states included.
	Import(ctx context.Context, next func() (Record, error)) error
}

// BatchImporter is a Snapshotter that can fill a fresh store in bounded
// transactions, one per batch, so that a large copy never sits in one
// transaction (Copy, behind migrate-store). All or nothing is kept by
// marking the store incomplete for the whole copy: Open refuses a marked
// store with ErrIncompleteCopy until FinishImport clears the mark, and a
// failed copy stays marked (drop the destination and copy again).
type BatchImporter interface {
	Snapshotter
	// BeginImport refuses a store that holds any record or the mark of an
	// earlier copy (ErrNotEmpty, nothing changed); otherwise it marks the
	// store incomplete, in the same transaction as the check.
	BeginImport(ctx context.Context) error
	// ImportBatch writes recs in one transaction of its own, with Import's
	// rules per record; records come in Export's order across batches
	// (identities after their accounts, audit events oldest first). It
	// refuses a store that is not marked by BeginImport. An error rolls
	// back this batch only; the store stays marked.
	ImportBatch(ctx context.Context, recs []Record) error
	// FinishImport clears the mark: the store opens normally again.
	FinishImport(ctx context.Context) error
	// CheckComplete returns ErrIncompleteCopy while the store is marked
	// (the check Open makes).
	CheckComplete(ctx context.Context) error
}
