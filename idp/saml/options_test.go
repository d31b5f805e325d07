package saml

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// fullLines set every option once, as Caddyfile lines would (lists with
// two values, so that a one-value option is told apart), giving fullOptions.
var fullLines = []struct {
	name string
	args []string
}{
	{"idp_metadata_url", []string{"{env.MD}"}},
	{"idp_metadata_file", []string{"/etc/idp.xml"}},
	{"entity_id", []string{"https://auth.example.com/sp"}},
	{"sp_cert_file", []string{"/etc/sp.crt"}},
	{"sp_key_file", []string{"/etc/sp.key"}},
	{"binding", []string{"post"}},
	{"metadata_validity", []string{"30d"}},
	{"display_name", []string{"Corp SSO"}},
	{"icon_url", []string{"https://idp.example.org/icon.png"}},
	{"attr_subject", []string{"uid"}},
	{"attr_email", []string{"mail"}},
	{"attr_name", []string{"cn"}},
	{"attr_groups", []string{"memberOf"}},
	{"trust_email", nil},
	{"accept_response_signature", nil},
	{"allow_email_domains", []string{"example.org", "example.net"}},
	{"allow_groups", []string{"mcp", "ops"}},
	{"allow_subjects", []string{"s1", "s2"}},
	{"link_by_email", nil},
	{"no_account_creation", nil},
}

var fullOptions = Options{
	UpstreamButton: idp.UpstreamButton{Name: "corp", DisplayName: "Corp SSO", IconURL: "https://idp.example.org/icon.png"},
	IdPMetadataURL: "{env.MD}", IdPMetadataFile: "/etc/idp.xml", EntityID: "https://auth.example.com/sp",
	SPCertFile: "/etc/sp.crt", SPKeyFile: "/etc/sp.key", Binding: "post",
	MetadataValidity: idp.Duration(720 * time.Hour),
	AttrSubject:      "uid", AttrEmail: "mail", AttrName: "cn", AttrGroups: "memberOf",
	TrustEmail: true, AcceptResponseSignature: true,
	UpstreamAccounts: idp.UpstreamAccounts{AllowEmailDomains: []string{"example.org", "example.net"}, AllowGroups: []string{"mcp", "ops"}, AllowSubjects: []string{"s1", "s2"},
		LinkByEmail: true, NoAccountCreation: true},
}

func TestOptionsSetEveryOption(t *testing.T) {
	var o Options
	o.SetProviderName("corp")
	for _, l := range fullLines {
		if err := o.SetOption(l.name, l.args); err != nil {
			t.Fatalf("%s %v: %v", l.name, l.args, err)
		}
	}
	if !reflect.DeepEqual(o, fullOptions) {
		t.Fatalf("options:\n got %+v\nwant %+v", o, fullOptions)
	}
	if o.ProviderName() != "corp" {
		t.Fatalf("ProviderName %q", o.ProviderName())
	}
}

func TestOptionsWrongArgCount(t *testing.T) {
	for _, l := range fullLines {
		var bad [][]string
		switch len(l.args) {
		case 0:
			bad = [][]string{{"yes"}}
		case 1:
			bad = [][]string{nil, {"a", "b"}}
		default:
			bad = [][]string{nil}
		}
		for _, args := range bad {
			var o Options
			err := o.SetOption(l.name, args)
			if !errors.Is(err, idp.ErrArgCount) || !strings.HasPrefix(err.Error(), l.name+": ") {
				t.Errorf("%s %v: err = %v, want ErrArgCount naming the option", l.name, args, err)
			}
		}
	}
}

func TestOptionsBadValues(t *testing.T) {
	var o Options
	for _, c := range []struct{ name, arg, want string }{
		{"binding", "artifact", `binding "artifact": use redirect or post`},
		{"metadata_validity", "soon", "metadata_validity: "},
		{"implicit", "x", `unknown saml option "implicit"`},
		{"name", "x", `unknown saml option "name"`},
	} {
		err := o.SetOption(c.name, []string{c.arg})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: err = %v, want %q", c.name, c.arg, err, c.want)
		}
	}
	if err := o.SetOption("implicit", nil); !errors.Is(err, idp.ErrUnknownOption) {
		t.Errorf("unknown option: %v", err)
	}
	if o.Binding != "" || o.MetadataValidity != 0 {
		t.Fatalf("a refused value was kept: %+v", o)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{UpstreamButton: idp.UpstreamButton{Name: "corp"}, IdPMetadataURL: "https://idp/md"}, ""},
		{Options{UpstreamButton: idp.UpstreamButton{Name: "corp"}, IdPMetadataFile: "/md.xml"}, ""},
		{Options{UpstreamButton: idp.UpstreamButton{Name: "corp"}}, "saml corp: give exactly one of idp_metadata_url and idp_metadata_file"},
		{Options{UpstreamButton: idp.UpstreamButton{Name: "corp"}, IdPMetadataURL: "https://idp/md", IdPMetadataFile: "/md.xml"}, "exactly one"},
		{Options{IdPMetadataURL: "https://idp/md"}, "name"},
	} {
		err := c.o.Validate()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: Validate() = %v, want %q", c.o, err, c.want)
		}
	}
}

// The JSON field names are the config's (login.saml); metadata_validity
// is nanoseconds, as caddy.Duration wrote it.
func TestOptionsJSONNames(t *testing.T) {
	b, err := json.Marshal(fullOptions)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"corp","display_name":"Corp SSO","icon_url":"https://idp.example.org/icon.png","idp_metadata_url":"{env.MD}",` +
		`"idp_metadata_file":"/etc/idp.xml","entity_id":"https://auth.example.com/sp","sp_cert_file":"/etc/sp.crt","sp_key_file":"/etc/sp.key",` +
		`"binding":"post","metadata_validity":2592000000000000,"attr_subject":"uid","attr_email":"mail","attr_name":"cn","attr_groups":"memberOf",` +
		`"trust_email":true,"accept_response_signature":true,"allow_email_domains":["example.org","example.net"],"allow_groups":["mcp","ops"],` +
		`"allow_subjects":["s1","s2"],"link_by_email":true,"no_account_creation":true}`
	if string(b) != want {
		t.Fatalf("JSON:\n got %s\nwant %s", b, want)
	}
	var back Options
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, fullOptions) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"metadata_validity":"30d"}`), &back); err != nil || back.MetadataValidity != fullOptions.MetadataValidity {
		t.Fatalf("duration string: %v %v", back.MetadataValidity, err)
	}
}

// The kind is registered under "saml" and builds a provider through the
// registry, against the real test IdP: the metadata URL's placeholder is
// expanded, and the SP pair comes from the key store or from files.
func TestKindBuildsProvider(t *testing.T) {
	k, ok := idp.LookupKind("saml")
	if !ok {
		t.Fatal("saml is not registered")
	}
	ti := newTestIdP(t, false)
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env := idp.KindEnv{BaseURL: "https://auth.example.com/login/corp", Store: st, KeyStore: DirKeyStore(t.TempDir()),
		Replace: func(s string) string { return strings.ReplaceAll(s, "{env.MD}", ti.srv.URL+"/metadata") }}
	build := func(lines ...string) (idp.Provider, error) {
		opts := k.NewOptions()
		opts.SetProviderName("corp")
		for _, l := range lines {
			f := strings.Fields(l)
			if err := opts.SetOption(f[0], f[1:]); err != nil {
				t.Fatal(err)
			}
		}
		if err := opts.Validate(); err != nil {
			t.Fatal(err)
		}
		return k.Build(context.Background(), opts, env)
	}
	p, err := build("idp_metadata_url {env.MD}", "trust_email")
	if err != nil {
		t.Fatal(err)
	}
	sp := p.(*Provider)
	if p.Kind() != "saml" || p.Name() != "corp" || sp.EntityID() != "https://auth.example.com/login/corp/metadata" || sp.sp == nil {
		t.Fatalf("provider %s:%s entity %s, metadata loaded %v", p.Kind(), p.Name(), sp.EntityID(), sp.sp != nil)
	}

	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "sp.crt"), filepath.Join(dir, "sp.key")
	testKeys(t)
	if os.WriteFile(certFile, spCertPEM, 0o600) != nil || os.WriteFile(keyFile, spKey, 0o600) != nil {
		t.Fatal("writing the SP pair")
	}
	p, err = build("idp_metadata_url {env.MD}", "sp_cert_file "+certFile, "sp_key_file "+keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !p.(*Provider).cert.Equal(mustCert(t, spCertPEM)) {
		t.Fatal("the SP certificate is not the one from sp_cert_file")
	}
	if _, err := build("idp_metadata_url {env.MD}", "sp_cert_file "+certFile, "sp_key_file "+filepath.Join(dir, "none")); err == nil ||
		!strings.HasPrefix(err.Error(), "sp_key_file: ") {
		t.Fatalf("missing key file: %v", err)
	}
	if _, err := k.Build(context.Background(), nil, env); err == nil {
		t.Fatal("Build accepted options of another kind")
	}
}

func mustCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
