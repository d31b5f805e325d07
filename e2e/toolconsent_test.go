package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// goSDKSessionAt is goSDKSession for one protocol revision ("" = the SDK's
// default, 2026-07-28); scopes, when set, are what its first authorization
// asks for (default: the challenge's, then the PRM's).
func goSDKSessionAt(t *testing.T, s *stack, version string, scopes []string, b *browser) *mcp.ClientSession {
	t.Helper()
	if b == nil {
		b = newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	}
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		RedirectURL:         cliRedirect,
		RequestRefreshToken: true,
		Client:              s.Client,
		PreregisteredClient: &oauthex.ClientCredentials{ClientID: cliClientID},
		ScopeFilter: func(discovered []string) []string {
			// The first authorization asks for scopes only; a step-up
			// (403 insufficient_scope) asks for what the challenge names.
			if scopes != nil {
				first := scopes
				scopes = nil
				return first
			}
			return discovered
		},
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			res := b.authorize(t, args.URL, aliceEmail, alicePassword)
			return &auth.AuthorizationResult{Code: res.Query.Get("code"), State: res.Query.Get("state"), Iss: res.Query.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-go-sdk", Version: "1.0.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.MCPURL, HTTPClient: s.Client, OAuthHandler: h, DisableStandaloneSSE: true},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("Go SDK connect (%q) through OAuth: %v", version, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestTodoBothRevisionsThroughGuard: the sample server behind the guard
// serves MCP 2026-07-28 (stateless, no session id) and 2025-11-25 (stateful)
// to the Go SDK client; it used to refuse 2026-07-28 with -32022.
func TestTodoBothRevisionsThroughGuard(t *testing.T) {
	s := startStack(t, stackOpts{})
	for _, tc := range []struct{ ask, want string }{{"", "2026-07-28"}, {"2025-11-25", "2025-11-25"}} {
		t.Run("revision="+tc.want, func(t *testing.T) {
			cs := goSDKSessionAt(t, s, tc.ask, nil, nil)
			if got := cs.InitializeResult().ProtocolVersion; got != tc.want {
				t.Fatalf("negotiated %q through the guard, want %q", got, tc.want)
			}
			if (cs.ID() == "") != (tc.want == "2026-07-28") {
				t.Errorf("session id %q for %s", cs.ID(), tc.want)
			}
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
			if err != nil {
				t.Fatalf("whoami: %v", err)
			}
			if who := toolJSON(t, res); !strings.Contains(who, aliceEmail) {
				t.Fatalf("whoami over %s: %s", tc.want, who)
			}
		})
	}
}
