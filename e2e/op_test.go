// The OpenID Provider of idp/oidc's tests (ory/fosite), copied for the
// end-to-end tests: the built binary signs users in through it.

package e2e

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

// testOP is a real OpenID Provider built with ory/fosite: authorization
// code flow with PKCE, ID tokens signed with its RSA key, discovery and JWKS
// served from that key. The authorize endpoint signs in and consents for the
// configured user automatically. mutate, when set, changes the ID token's
// claims before fosite signs them (to produce tokens a broken or hostile
// provider would send).
type testOP struct {
	srv    *httptest.Server
	issuer string
	key    *rsa.PrivateKey
	store  *fstorage.MemoryStore
	op     fosite.OAuth2Provider

	mu sync.Mutex
	// user is who the provider signs in.
	user opUser
	// mutate edits ID token claims before signing.
	mutate func(jwt.MapClaims)
	// foreignKey, when set, signs ID tokens instead of the published key
	// (same kid): a forgery.
	foreignKey *rsa.PrivateKey
	// sendIss adds the RFC 9207 iss parameter (and advertises it).
	sendIss bool
	// discoveryIssuer, when set, is the issuer the discovery document claims.
	discoveryIssuer string
	// userinfoSub, when set, replaces the subject the userinfo endpoint returns.
	userinfoSub string
}

type opUser struct {
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
}

// mutatingSigner wraps fosite's signer to let a test change the claims.
type mutatingSigner struct {
	jwt.Signer
	op *testOP
}

func (s mutatingSigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	s.op.mu.Lock()
	m, fk := s.op.mutate, s.op.foreignKey
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
	opClientID     = "mcpauth-test"
	opClientSecret = "a-long-test-client-secret-0123456789"
	opKeyID        = "op-key-1"
)

func newTestOP(t testing.TB, redirectURIs ...string) *testOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o := &testOP{key: key, sendIss: true, user: opUser{Subject: "op-user-1", Email: "zoe@corp.example", EmailVerified: true, Name: "Zoe Upstream", Groups: []string{"staff", "mcp-users"}}}
	o.srv = httptest.NewUnstartedServer(http.HandlerFunc(o.serve))
	o.srv.Start() // plain http on 127.0.0.1: allowed for loopback issuers
	t.Cleanup(o.srv.Close)
	o.issuer = o.srv.URL
	secret, err := bcrypt.GenerateFromPassword([]byte(opClientSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	o.store = fstorage.NewMemoryStore()
	o.store.Clients[opClientID] = &fosite.DefaultClient{
		ID:            opClientID,
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
		IDTokenIssuer:              o.issuer,
		EnforcePKCE:                true,
		SendDebugMessagesToClients: true,
		IDTokenLifespan:            time.Hour,
		AccessTokenLifespan:        time.Hour,
		AuthorizeCodeLifespan:      5 * time.Minute,
	}
	keyGetter := func(context.Context) (interface{}, error) { return key, nil }
	o.op = compose.Compose(cfg, o.store, &compose.CommonStrategy{
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

func (o *testOP) set(f func(o *testOP)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

func (o *testOP) serve(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	o.mu.Lock()
	user, sendIss, discIss := o.user, o.sendIss, o.discoveryIssuer
	o.mu.Unlock()
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                         o.cmpOr(discIss, o.issuer),
			"authorization_endpoint":                         o.issuer + "/auth",
			"token_endpoint":                                 o.issuer + "/token",
			"jwks_uri":                                       o.issuer + "/jwks",
			"response_types_supported":                       []string{"code"},
			"subject_types_supported":                        []string{"public"},
			"id_token_signing_alg_values_supported":          []string{"RS256"},
			"code_challenge_methods_supported":               []string{"S256"},
			"userinfo_endpoint":                              o.issuer + "/userinfo",
			"authorization_response_iss_parameter_supported": sendIss,
		})
	case "/jwks":
		pub := o.key.PublicKey
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": opKeyID, "alg": "RS256", "use": "sig",
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
			Headers: &jwt.Headers{Extra: map[string]interface{}{"kid": opKeyID}},
			Subject: user.Subject,
		}
		resp, err := o.op.NewAuthorizeResponse(ctx, ar, sess)
		if err != nil {
			o.op.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		if sendIss {
			resp.AddParameter("iss", o.issuer)
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
		sub := o.cmpOr(o.userinfoSub, sess.Claims.Subject)
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

func (o *testOP) cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
