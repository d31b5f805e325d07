package oidc_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/oidc"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// fullLines set every option once, as Caddyfile lines would (lists with
// two values, so that a one-value option is told apart), giving fullOptions.
var fullLines = []struct {
	name string
	args []string
}{
	{"issuer", []string{"https://op.example.com"}},
	{"client_id", []string{"{env.CID}"}},
	{"client_secret", []string{"{env.CSECRET}"}},
	{"display_name", []string{"Corp SSO"}},
	{"icon_url", []string{"https://op.example.com/icon.png"}},
	{"scopes", []string{"openid", "email"}},
	{"claim_subject", []string{"oid"}},
	{"claim_email", []string{"mail"}},
	{"claim_email_verified", []string{"xms_edov"}},
	{"claim_name", []string{"display"}},
	{"claim_groups", []string{"roles"}},
	{"userinfo", nil},
	{"allow_email_domains", []string{"example.com", "example.org"}},
	{"allow_groups", []string{"mcp", "ops"}},
	{"allow_subjects", []string{"s1", "s2"}},
	{"link_by_email", nil},
	{"no_account_creation", nil},
}

var fullOptions = oidc.Options{
	UpstreamButton: idp.UpstreamButton{Name: "corp", DisplayName: "Corp SSO", IconURL: "https://op.example.com/icon.png"},
	Issuer:         "https://op.example.com", ClientID: "{env.CID}", ClientSecret: "{env.CSECRET}",
	Scopes:       []string{"openid", "email"},
	ClaimSubject: "oid", ClaimEmail: "mail", ClaimEmailVerified: "xms_edov", ClaimName: "display", ClaimGroups: "roles",
	UserInfo: true,
	UpstreamAccounts: idp.UpstreamAccounts{AllowEmailDomains: []string{"example.com", "example.org"}, AllowGroups: []string{"mcp", "ops"}, AllowSubjects: []string{"s1", "s2"},
		LinkByEmail: true, NoAccountCreation: true},
}

func TestOptionsSetEveryOption(t *testing.T) {
	var o oidc.Options
	o.SetProviderName("corp")
	for _, l := range fullLines {
		if err := o.SetOption(l.name, l.args); err != nil {
			t.Fatalf("%s %v: %v", l.name, l.args, err)
		}
	}
	if !reflect.DeepEqual(o, fullOptions) {
		t.Fatalf("options:\n got %+v\nwant %+v", o, fullOptions)
	}
	if o.ProviderName() != "corp" || o.Validate() != nil {
		t.Fatalf("ProviderName %q, Validate %v", o.ProviderName(), o.Validate())
	}
}

func TestOptionsWrongArgCount(t *testing.T) {
	for _, l := range fullLines {
		var bad [][]string
		switch len(l.args) {
		case 0: // a flag takes none
			bad = [][]string{{"yes"}}
		case 1: // a single value
			bad = [][]string{nil, {"a", "b"}}
		default: // a list takes one or more
			bad = [][]string{nil}
		}
		for _, args := range bad {
			var o oidc.Options
			err := o.SetOption(l.name, args)
			if !errors.Is(err, idp.ErrArgCount) || !strings.HasPrefix(err.Error(), l.name+": ") {
				t.Errorf("%s %v: err = %v, want ErrArgCount naming the option", l.name, args, err)
			}
		}
	}
}

func TestOptionsUnknownOption(t *testing.T) {
	var o oidc.Options
	for _, name := range []string{"implicit", "name", "Issuer", ""} {
		err := o.SetOption(name, []string{"x"})
		if !errors.Is(err, idp.ErrUnknownOption) || !strings.Contains(err.Error(), `unknown oidc option "`+name+`"`) {
			t.Errorf("%q: err = %v", name, err)
		}
	}
	if err := (&oidc.Options{}).Validate(); err == nil {
		t.Fatal("Validate accepted options without a name")
	}
}

// The JSON field names are the config's (login.oidc): renaming one breaks
// existing configs.
func TestOptionsJSONNames(t *testing.T) {
	b, err := json.Marshal(fullOptions)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"corp","display_name":"Corp SSO","icon_url":"https://op.example.com/icon.png","issuer":"https://op.example.com",` +
		`"client_id":"{env.CID}","client_secret":"{env.CSECRET}","scopes":["openid","email"],"claim_subject":"oid","claim_email":"mail",` +
		`"claim_email_verified":"xms_edov","claim_name":"display","claim_groups":"roles","userinfo":true,` +
		`"allow_email_domains":["example.com","example.org"],"allow_groups":["mcp","ops"],"allow_subjects":["s1","s2"],` +
		`"link_by_email":true,"no_account_creation":true}`
	if string(b) != want {
		t.Fatalf("JSON:\n got %s\nwant %s", b, want)
	}
	var back oidc.Options
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, fullOptions) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

// The options become the provider's Config: placeholders expanded in the
// issuer and credentials only, the redirect URL under the base URL.
func TestOptionsConfig(t *testing.T) {
	env := idp.KindEnv{BaseURL: "https://auth.example.com/login/corp", Replace: func(s string) string {
		return strings.NewReplacer("{env.CID}", "client-1", "{env.CSECRET}", "s3cret").Replace(s)
	}}
	o := fullOptions
	cfg := o.Config(env)
	if cfg.Name != "corp" || cfg.DisplayName != "Corp SSO" || cfg.IconURL != o.IconURL ||
		cfg.Issuer != o.Issuer || cfg.ClientID != "client-1" || cfg.ClientSecret != "s3cret" ||
		cfg.RedirectURL != "https://auth.example.com/login/corp/callback" || !cfg.UserInfo ||
		!reflect.DeepEqual(cfg.Scopes, o.Scopes) ||
		cfg.Claims != (oidc.ClaimMapping{Subject: "oid", Email: "mail", EmailVerified: "xms_edov", Name: "display", Groups: "roles"}) ||
		!reflect.DeepEqual(cfg.Allow, idp.AllowRules{EmailDomains: o.AllowEmailDomains, Groups: o.AllowGroups, Subjects: o.AllowSubjects}) ||
		!cfg.LinkByEmail || !cfg.NoAccountCreation {
		t.Fatalf("config: %+v", cfg)
	}
}

// The kind is registered under "oidc" and builds a provider through the
// registry (discovery of an unreachable issuer is retried later, not fatal).
func TestKindBuildsProvider(t *testing.T) {
	k, ok := idp.LookupKind("oidc")
	if !ok {
		t.Fatal("oidc is not registered")
	}
	if _, ok := k.NewOptions().(*oidc.Options); !ok {
		t.Fatalf("NewOptions() = %T", k.NewOptions())
	}
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env := idp.KindEnv{BaseURL: "https://auth.example.com/login/corp", Store: st}
	opts := k.NewOptions()
	opts.SetProviderName("corp")
	for _, l := range [][]string{{"issuer", "https://127.0.0.1:1"}, {"client_id", "c"}} {
		if err := opts.SetOption(l[0], l[1:]); err != nil {
			t.Fatal(err)
		}
	}
	p, err := k.Build(context.Background(), opts, env)
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind() != "oidc" || p.Name() != "corp" {
		t.Fatalf("provider %s:%s", p.Kind(), p.Name())
	}
	if _, err := k.Build(context.Background(), &oidc.Options{UpstreamButton: idp.UpstreamButton{Name: "corp"}, Issuer: "ftp://x", ClientID: "c"}, env); err == nil ||
		!strings.Contains(err.Error(), "issuer") {
		t.Fatalf("bad issuer: %v", err)
	}
	if _, err := k.Build(context.Background(), nil, env); err == nil {
		t.Fatal("Build accepted options of another kind")
	}
}
