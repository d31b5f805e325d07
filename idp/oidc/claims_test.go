package oidc

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMapClaims(t *testing.T) {
	std := ClaimMapping{Subject: "sub", Email: "email", EmailVerified: "email_verified", Name: "name", Groups: "groups"}
	tests := []struct {
		name     string
		m        ClaimMapping
		claims   string
		ok       bool
		email    string
		verified bool
		groups   []string
	}{
		{"standard", std, `{"sub":"u1","email":"a@b.example","email_verified":true,"name":"A","groups":["x","y"]}`, true, "a@b.example", true, []string{"x", "y"}},
		{"verified as string", std, `{"sub":"u1","email":"a@b.example","email_verified":"true"}`, true, "a@b.example", true, nil},
		{"verified without email", std, `{"sub":"u1","email_verified":true}`, true, "", false, nil},
		{"verified as number is not verified", std, `{"sub":"u1","email":"a@b.example","email_verified":1}`, true, "a@b.example", false, nil},
		{"single group string", std, `{"sub":"u1","groups":"g"}`, true, "", false, []string{"g"}},
		{"non-string groups dropped", std, `{"sub":"u1","groups":["g",1,null,{"a":1},""]}`, true, "", false, []string{"g"}},
		{"custom subject claim", ClaimMapping{Subject: "oid", Email: "upn", EmailVerified: "xms_edov", Name: "name", Groups: "roles"},
			`{"sub":"pairwise","oid":"stable","upn":"a@b.example","xms_edov":true,"roles":["r"]}`, true, "a@b.example", true, []string{"r"}},
		{"no subject", std, `{"email":"a@b.example"}`, false, "", false, nil},
		{"numeric subject", std, `{"sub":12}`, false, "", false, nil},
		{"empty subject", std, `{"sub":""}`, false, "", false, nil},
		{"control characters in subject", std, `{"sub":"a\nb"}`, false, "", false, nil},
		{"oversized subject", std, `{"sub":"` + strings.Repeat("s", 256) + `"}`, false, "", false, nil},
		{"control characters in email dropped", std, `{"sub":"u","email":"a@b.example\r\nX: y","email_verified":true}`, true, "", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c map[string]any
			if err := json.Unmarshal([]byte(tc.claims), &c); err != nil {
				t.Fatal(err)
			}
			ext, err := mapClaims("p", tc.m, c)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if !tc.ok {
				return
			}
			if ext.Provider != "p" || ext.Email != tc.email || ext.EmailVerified != tc.verified || !slices.Equal(ext.Groups, tc.groups) {
				t.Fatalf("got %+v", ext)
			}
		})
	}
}

func TestParseCallback(t *testing.T) {
	tests := []struct {
		name, q string
		ok      bool
		want    callbackParams
	}{
		{"code and state", "code=c&state=s&iss=https%3A%2F%2Fop.example", true, callbackParams{Code: "c", State: "s", Iss: "https://op.example"}},
		{"error", "error=access_denied&error_description=no&state=s", true, callbackParams{Error: "access_denied", State: "s"}},
		{"unknown params ignored", "code=c&state=s&session_state=x&scope=openid", true, callbackParams{Code: "c", State: "s"}},
		{"duplicate code", "code=a&code=b&state=s", false, callbackParams{}},
		{"duplicate iss", "code=a&state=s&iss=x&iss=y", false, callbackParams{}},
		{"bad escape", "code=%zz&state=s", false, callbackParams{}},
		{"semicolon", "code=a;state=s", false, callbackParams{}},
		{"control character", "code=a%0Ab&state=s", false, callbackParams{}},
		{"oversized", "code=" + strings.Repeat("a", maxParamValue+1) + "&state=s", false, callbackParams{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseCallback(tc.q)
			if (err == nil) != tc.ok || p != tc.want {
				t.Fatalf("got %+v, %v", p, err)
			}
		})
	}
}

// FuzzParseCallback: the callback query is attacker input.
func FuzzParseCallback(f *testing.F) {
	for _, s := range []string{"code=c&state=s&iss=https%3A%2F%2Fop.example", "error=access_denied", "code=a&code=b", "%zz", "a;b", "", "state=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		p, err := parseCallback(q)
		if err != nil {
			return
		}
		for _, v := range []string{p.Code, p.State, p.Iss, p.Error} {
			if len(v) > maxParamValue || !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n") {
				t.Fatalf("accepted %q", v)
			}
		}
	})
}

// FuzzMapClaims: claims come from a verified token, but a provider's data
// is still not trusted to be well-formed.
func FuzzMapClaims(f *testing.F) {
	f.Add(`{"sub":"u1","email":"a@b.example","email_verified":true,"name":"A","groups":["x","y"]}`)
	f.Add(`{"sub":"u","groups":"g","name":"\u0000x"}`)
	m := ClaimMapping{Subject: "sub", Email: "email", EmailVerified: "email_verified", Name: "name", Groups: "groups"}
	f.Fuzz(func(t *testing.T, js string) {
		var c map[string]any
		if json.Unmarshal([]byte(js), &c) != nil {
			return
		}
		ext, err := mapClaims("p", m, c)
		if err != nil {
			return
		}
		if ext.Subject == "" || len(ext.Subject) > maxSubject || len(ext.Name) > maxName || len(ext.Groups) > maxGroups || !utf8.ValidString(ext.Name) {
			t.Fatalf("accepted %+v", ext)
		}
		if ext.EmailVerified && ext.Email == "" {
			t.Fatal("verified without email")
		}
	})
}
