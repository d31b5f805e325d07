package storagetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Run runs the conformance suite. open must return a fresh, empty backend
// for every call; Run closes it when the subtest that opened it ends.
func Run(t *testing.T, open func(t *testing.T) storage.Backend) {
	t.Helper()
	s := &suite{open: open}
	t.Run("Clients", s.testClients)
	t.Run("Codes", s.testCodes)
	t.Run("Grants", s.testGrants)
	t.Run("Widen", s.testWiden)
	t.Run("Keys", s.testKeys)
	t.Run("Consents", s.testConsents)
	t.Run("Accounts", s.testAccounts)
	t.Run("Sessions", s.testSessions)
	t.Run("Tickets", s.testTickets)
	t.Run("Replays", s.testReplays)
	t.Run("EmailVerifications", s.testVerifications)
	t.Run("Audit", s.testAudit)
	t.Run("AuditInTransaction", s.testTxAudit)
	t.Run("Maintenance", s.testMaintenance)
	t.Run("CallerClock", s.testCallerClock)
	t.Run("Context", s.testContext)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("Snapshot", s.testSnapshot)
}

type suite struct {
	open func(t *testing.T) storage.Backend
}

// backend opens a fresh backend closed at the end of t.
func (s *suite) backend(t *testing.T) storage.Backend {
	t.Helper()
	b := s.open(t)
	if b == nil {
		t.Fatal("storagetest: open returned nil")
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// t0 is the suite's reference time: microsecond precision, UTC, far from
// the real clock so that no backend can lean on time.Now.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC)

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// Hash returns the SHA-256 of s, the way callers key codes, refresh tokens,
// sessions and tickets.
func Hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

var errTest = errors.New("storagetest: injected failure")

// wantErr fails unless errors.Is(err, want); want nil means no error.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error: %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	wantErr(t, what, err, nil)
}

// same fails unless got and want are equal once times are compared with
// time.Equal and nil/empty slices and maps are treated alike.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := normalize(got), normalize(want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

var timeType = reflect.TypeOf(time.Time{})

// normalize returns a deep copy of v with times in UTC and empty slices and
// maps set to nil.
func normalize(v any) any {
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	out := reflect.New(rv.Type()).Elem()
	normalizeInto(out, rv)
	return out.Interface()
}

func normalizeInto(dst, src reflect.Value) {
	switch {
	case src.Type() == timeType:
		t := src.Interface().(time.Time)
		if t.IsZero() {
			dst.Set(reflect.ValueOf(time.Time{}))
		} else {
			dst.Set(reflect.ValueOf(t.UTC().Round(0)))
		}
		return
	}
	switch src.Kind() {
	case reflect.Struct:
		for i := range src.NumField() {
			if !dst.Field(i).CanSet() {
				dst.Field(i).Set(src.Field(i)) // unexported: unreachable for our records
				continue
			}
			normalizeInto(dst.Field(i), src.Field(i))
		}
	case reflect.Slice:
		if src.Len() == 0 {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			normalizeInto(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.Len() == 0 {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		iter := src.MapRange()
		for iter.Next() {
			e := reflect.New(src.Type().Elem()).Elem()
			normalizeInto(e, iter.Value())
			m.SetMapIndex(iter.Key(), e)
		}
		dst.Set(m)
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		normalizeInto(p.Elem(), src.Elem())
		dst.Set(p)
	default:
		dst.Set(src)
	}
}

// Fixtures. Every field is set so that a backend that drops one fails.

func newClient(id string) storage.Client {
	return storage.Client{
		ID:                      id,
		Kind:                    storage.ClientDCR,
		Name:                    "Client " + id,
		RedirectURIs:            []string{"https://app.example/cb", "http://127.0.0.1/cb"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		Scopes:                  []string{"mcp:read", "mcp:write"},
		DefaultScopes:           []string{"mcp:read"},
		DefaultAudience:         "https://mcp.example/mcp",
		AccessTokenTTL:          30 * time.Minute,
		RefreshTokenTTL:         72 * time.Hour,
		TokenEndpointAuthMethod: "none",
		SecretHash:              "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		SkipConsent:             true,
		Fingerprint:             "fp-" + id,
		LogoURI:                 "https://app.example/logo.png",
		ClientURI:               "https://app.example/",
		SoftwareID:              "software-" + id,
		Predecessors:            []string{"dcr_before-" + id, "dcr_first-" + id},
		RegisteredFrom:          "192.0.2.7",
		CreatedAt:               at(0),
		UpdatedAt:               at(time.Minute),
	}
}

func newCode(secret, grantID string) storage.AuthCode {
	return storage.AuthCode{
		Hash:                Hash(secret),
		ClientID:            "client-1",
		RedirectURI:         "https://app.example/cb",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		Subject:             "user-1",
		Scopes:              []string{"mcp:read", "offline_access"},
		Resource:            "https://mcp.example/mcp",
		AuthTime:            at(-time.Minute),
		GrantID:             grantID,
		CreatedAt:           at(0),
		ExpiresAt:           at(time.Minute),
	}
}

// grantFrom is the grant an issue callback makes of a code, with refresh
// token refresh.
func grantFrom(c storage.AuthCode, refresh string) *storage.Grant {
	return &storage.Grant{
		ID:               c.GrantID,
		ClientID:         c.ClientID,
		Subject:          c.Subject,
		Scopes:           c.Scopes,
		Resource:         c.Resource,
		AuthTime:         c.AuthTime,
		RefreshHash:      Hash(refresh),
		CreatedAt:        c.UsedAt,
		RefreshExpiresAt: at(24 * time.Hour),
		ExpiresAt:        at(30 * 24 * time.Hour),
	}
}

func newGrant(id, clientID, subject, refresh string) storage.Grant {
	g := storage.Grant{
		ID:               id,
		ClientID:         clientID,
		Subject:          subject,
		Scopes:           []string{"mcp:read", "offline_access"},
		Resource:         "https://mcp.example/mcp",
		AuthTime:         at(-time.Minute),
		CreatedAt:        at(0),
		RefreshExpiresAt: at(24 * time.Hour),
		ExpiresAt:        at(30 * 24 * time.Hour),
	}
	if refresh != "" {
		g.RefreshHash = Hash(refresh)
	}
	return g
}

// testGrace is the lost-response grace of the suite's rotations.
const testGrace = time.Minute

func rotation(presented, next string, now time.Time) storage.Rotation {
	return storage.Rotation{
		Presented:     Hash(presented),
		Next:          Hash(next),
		Now:           now,
		NextExpiresAt: now.Add(24 * time.Hour),
		Grace:         testGrace,
	}
}

func newAccount(id, email string) storage.Account {
	return storage.Account{
		ID:                id,
		Email:             email,
		Name:              "Name " + id,
		EmailVerified:     true,
		PasswordHash:      "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Groups:            []string{"staff", "admins"},
		CreatedAt:         at(0),
		UpdatedAt:         at(time.Second),
		PasswordChangedAt: at(2 * time.Second),
	}
}

func newSession(secret, accountID string) storage.Session {
	return storage.Session{
		Hash:       Hash(secret),
		AccountID:  accountID,
		Method:     "password",
		CSRFSecret: []byte("0123456789abcdef0123456789abcdef"),
		CreatedAt:  at(0),
		LastSeenAt: at(0),
		ExpiresAt:  at(12 * time.Hour),
		UserAgent:  "Mozilla/5.0 (storagetest)",
	}
}

func newTicket(kind, secret string) storage.Ticket {
	return storage.Ticket{
		Kind:      kind,
		Hash:      Hash(secret),
		Value:     []byte(`{"state":"x","nonce":"y"}`),
		ExpiresAt: at(10 * time.Minute),
	}
}

func newKey(kid string, created time.Time) storage.SigningKey {
	return storage.SigningKey{
		ID:         kid,
		Algorithm:  "ES256",
		PrivateJWK: []byte(fmt.Sprintf(`{"kty":"EC","crv":"P-256","kid":%q}`, kid)),
		CreatedAt:  created,
	}
}

func newConsent(subject, clientID string) storage.Consent {
	return storage.Consent{
		Subject:     subject,
		ClientID:    clientID,
		Scopes:      []string{"mcp:read"},
		Resource:    "https://mcp.example/mcp",
		Fingerprint: "fp",
		GrantedAt:   at(0),
		ExpiresAt:   at(90 * 24 * time.Hour),
	}
}

// getGrant returns the stored grant or fails.
func getGrant(t *testing.T, b storage.Backend, id string) storage.Grant {
	t.Helper()
	g, err := b.GetGrant(context.Background(), id)
	must(t, "GetGrant "+id, err)
	return g
}
