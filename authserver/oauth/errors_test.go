package oauth

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorConstructors(t *testing.T) {
	tests := []struct {
		name   string
		err    *Error
		code   string
		status int
	}{
		{"invalid_request", ErrInvalidRequest("d"), "invalid_request", 400},
		{"invalid_client", ErrInvalidClient("d"), "invalid_client", 401},
		{"invalid_grant", ErrInvalidGrant("d"), "invalid_grant", 400},
		{"unauthorized_client", ErrUnauthorizedClient("d"), "unauthorized_client", 400},
		{"unsupported_grant_type", ErrUnsupportedGrantType("d"), "unsupported_grant_type", 400},
		{"unsupported_response_type", ErrUnsupportedResponseType("d"), "unsupported_response_type", 400},
		{"invalid_scope", ErrInvalidScope("d"), "invalid_scope", 400},
		{"invalid_target", ErrInvalidTarget("d"), "invalid_target", 400},
		{"access_denied", ErrAccessDenied("d"), "access_denied", 403},
		{"invalid_redirect_uri", ErrInvalidRedirectURI("d"), "invalid_redirect_uri", 400},
		{"invalid_client_metadata", ErrInvalidClientMetadata("d"), "invalid_client_metadata", 400},
		{"unsupported_token_type", ErrUnsupportedTokenType("d"), "unsupported_token_type", 400},
		{"server_error", ErrServerError(), "server_error", 500},
		{"temporarily_unavailable", ErrTemporarilyUnavailable("d"), "temporarily_unavailable", 503},
		{"login_required", ErrLoginRequired("d"), "login_required", 400},
		{"consent_required", ErrConsentRequired("d"), "consent_required", 400},
		{"interaction_required", ErrInteractionRequired("d"), "interaction_required", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err.Code != tt.code || tt.err.Status != tt.status {
				t.Fatalf("got %q/%d, want %q/%d", tt.err.Code, tt.err.Status, tt.code, tt.status)
			}
			if !strings.HasPrefix(tt.err.Error(), "oauth: "+tt.code) {
				t.Fatalf("Error() = %q", tt.err.Error())
			}
		})
	}
	t.Run("fresh values", func(t *testing.T) {
		a := ErrInvalidGrant("x")
		a.Description = "changed"
		if ErrInvalidGrant("x").Description != "x" || a == ErrInvalidGrant("x") {
			t.Fatal("constructors must return fresh values")
		}
	})
}

func TestAsError(t *testing.T) {
	oe := ErrInvalidScope("too broad")
	tests := []struct {
		name string
		in   error
		want *Error
		code string
		desc string
	}{
		{name: "typed as is", in: oe, want: oe},
		{name: "wrapped typed", in: fmt.Errorf("token: %w", oe), want: oe},
		{name: "random error", in: errors.New("pq: password authentication failed for user admin"), code: "server_error", desc: "internal error"},
		{name: "nil typed pointer wrapped", in: fmt.Errorf("x: %w", (*Error)(nil)), code: "server_error", desc: "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AsError(tt.in)
			if tt.want != nil {
				if got != tt.want {
					t.Fatalf("got %v, want the same value %v", got, tt.want)
				}
				return
			}
			if got.Code != tt.code || got.Description != tt.desc || got.Status != 500 {
				t.Fatalf("got %+v", got)
			}
			if strings.Contains(got.Error(), "password") {
				t.Fatal("generic error leaks the original text")
			}
		})
	}
	if AsError(nil) != nil {
		t.Fatal("AsError(nil) must be nil")
	}
}
