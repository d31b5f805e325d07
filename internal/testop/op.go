// Package testop is a real OpenID Provider for tests (ory/fosite), shared by
// the idp/oidc tests and the end-to-end tests, which sign users in through
// it. It is imported only by test files.
package testop

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	fstorage "github.com/ory/fosite/storage"
	"github.com/ory/fosite/token/jwt"
	"golang.org/x/crypto/bcrypt"
)

// OP is a real OpenID Provider built with ory/fosite: authorization
// code flow with PKCE, ID tokens signed with its RSA key, discovery and JWKS
// served from that key. The authorize endpoint signs in and consents for the
// configured user automatically. mutate, when set, changes the ID token's
// claims before fosite signs them (to produce tokens a broken or hostile
// provider would send).
type OP struct {
	srv    *httptest.Server
	Issuer string
	key    *rsa.PrivateKey
	Store  *fstorage.MemoryStore
	op     fosite.OAuth2Provider

	mu sync.Mutex
	// user is who the provider signs in.
	User User
	// mutate edits ID token claims before signing.
	Mutate func(jwt.MapClaims)
	// foreignKey, when set, signs ID tokens instead of the published key
	// (same kid): a forgery.
	ForeignKey *rsa.PrivateKey
	// sendIss adds the RFC 9207 iss parameter (and advertises it).
	SendIss bool
	// discoveryIssuer, when set, is the issuer the discovery document claims.
	DiscoveryIssuer string
	// userinfoSub, when set, replaces the subject the userinfo endpoint returns.
	UserinfoSub string
}

type User struct {
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
}

// mutatingSigner wraps fosite's signer to let a test change the claims.
type mutatingSigner struct {
	jwt.Signer
	op *OP
}

func (s mutatingSigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	s.op.mu.Lock()
	m, fk := s.op.Mutate, s.op.ForeignKey
	s.op.mu.Unlock()
	if m != nil {
		m(claims)
	}
	if fk != nil {
		forger := &jwt.DefaultSigner{GetPrivateKey: func(context.Context) (interface{}, error) { return fk, nil }}
		return forger.Generate(ctx, claims, header)
	}
	return s.Signer.Generate(ctx, claims, header)
}

const (
	ClientID     = "mcpauth-test"
	ClientSecret = "a-long-test-client-secret-0123456789"
	KeyID        = "op-key-1"
)

// New starts the provider on loopback with a client allowed to use
// redirectURIs; it is closed when the test ends.
func New(t testing.TB, redirectURIs ...string) *OP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o := &OP{key: key, SendIss: true, User: User{Subject: "op-user-1", Email: "zoe@corp.example", EmailVerified: true, Name: "Zoe Upstream", Groups: []string{"staff", "mcp-users"}}}
	o.srv = httptest.NewUnstartedServer(http.HandlerFunc(o.serve))
	o.srv.Start() // plain http on 127.0.0.1: allowed for loopback issuers
	t.Cleanup(o.srv.Close)
	o.Issuer = o.srv.URL
	secret, err := bcrypt.GenerateFromPassword([]byte(ClientSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	o.Store = fstorage.NewMemoryStore()
	o.Store.Clients[ClientID] = &fosite.DefaultClient{
		ID:            ClientID,
		Secret:        secret,
		RedirectURIs:  redirectURIs,
		ResponseTypes: []string{"code"},
		GrantTypes:    []string{"authorization_code"},
		Scopes:        []string{"openid", "email", "profile"},
	}
	gs := make([]byte, 32)
	_, _ = rand.Read(gs)
	cfg := &fosite.Config{
		GlobalSecret:               gs,
		IDTokenIssuer:              o.Issuer,
		EnforcePKCE:                true,
		SendDebugMessagesToClients: true,
		IDTokenLifespan:            time.Hour,
		AccessTokenLifespan:        time.Hour,
		AuthorizeCodeLifespan:      5 * time.Minute,
	}
	keyGetter := func(context.Context) (interface{}, error) { return key, nil }
	o.op = compose.Compose(cfg, o.Store, &compose.CommonStrategy{
		CoreStrategy: compose.NewOAuth2HMACStrategy(cfg),
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{
			Signer: mutatingSigner{Signer: &jwt.DefaultSigner{GetPrivateKey: keyGetter}, op: o},
			Config: cfg,
		},
		Signer: &jwt.DefaultSigner{GetPrivateKey: keyGetter},
	},
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenIntrospectionFactory,
	)
	return o
}

// Close stops the provider's server (an outage); later requests to it fail
// to connect.
func (o *OP) Close() { o.srv.Close() }

// Set changes the provider under its lock.
func (o *OP) Set(f func(o *OP)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

func (o *OP) serve(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	o.mu.Lock()
	user, sendIss, discIss := o.User, o.SendIss, o.DiscoveryIssuer
	o.mu.Unlock()
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                         o.cmpOr(discIss, o.Issuer),
			"authorization_endpoint":                         o.Issuer + "/auth",
			"token_endpoint":                                 o.Issuer + "/token",
			"jwks_uri":                                       o.Issuer + "/jwks",
			"response_types_supported":                       []string{"code"},
			"subject_types_supported":                        []string{"public"},
			"id_token_signing_alg_values_supported":          []string{"RS256"},
			"code_challenge_methods_supported":               []string{"S256"},
			"userinfo_endpoint":                              o.Issuer + "/userinfo",
			"authorization_response_iss_parameter_supported": sendIss,
		})
	case "/jwks":
		pub := o.key.PublicKey
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": KeyID, "alg": "RS256", "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	case "/auth":
		ar, err := o.op.NewAuthorizeRequest(ctx, r)
		if err != nil {
			o.op.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		sess := &openid.DefaultSession{
			Claims: &jwt.IDTokenClaims{
				Subject:     user.Subject,
				RequestedAt: time.Now().UTC(),
				AuthTime:    time.Now().UTC(),
				Extra: map[string]interface{}{
					"email": user.Email, "email_verified": user.EmailVerified, "name": user.Name, "groups": user.Groups,
				},
			},
			Headers: &jwt.Headers{Extra: map[string]interface{}{"kid": KeyID}},
			Subject: user.Subject,
		}
		resp, err := o.op.NewAuthorizeResponse(ctx, ar, sess)
		if err != nil {
			o.op.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		if sendIss {
			resp.AddParameter("iss", o.Issuer)
		}
		o.op.WriteAuthorizeResponse(ctx, w, ar, resp)
	case "/userinfo":
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		_, ar, err := o.op.IntrospectToken(ctx, tok, fosite.AccessToken, openid.NewDefaultSession())
		if err != nil {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		sess := ar.GetSession().(*openid.DefaultSession)
		o.mu.Lock()
		sub := o.cmpOr(o.UserinfoSub, sess.Claims.Subject)
		o.mu.Unlock()
		out := map[string]any{"sub": sub}
		for k, v := range sess.Claims.Extra {
			out[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	case "/token":
		ar, err := o.op.NewAccessRequest(ctx, r, openid.NewDefaultSession())
		if err != nil {
			o.op.WriteAccessError(ctx, w, ar, err)
			return
		}
		resp, err := o.op.NewAccessResponse(ctx, ar)
		if err != nil {
			o.op.WriteAccessError(ctx, w, ar, err)
			return
		}
		o.op.WriteAccessResponse(ctx, w, ar, resp)
	default:
		http.NotFound(w, r)
	}
}

func (o *OP) cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
