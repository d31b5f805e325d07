package saml

import (
	"context"
	"encoding/xml"
	"github.com/mcpauth/caddy-mcpauth/idp"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/crewjam/saml"

	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// fuzzProvider is a provider whose IdP metadata names a key the fuzzer does
// not have: no input can carry a valid signature.
func fuzzProvider(f *testing.F) (*Provider, *saml.ServiceProvider, []byte) {
	key, cert := selfSigned(f, "idp.example")
	ip := saml.IdentityProvider{Key: key, Certificate: cert,
		MetadataURL: url.URL{Scheme: "https", Host: "idp.example", Path: "/metadata"},
		SSOURL:      url.URL{Scheme: "https", Host: "idp.example", Path: "/sso"}}
	md, err := xml.Marshal(ip.Metadata())
	if err != nil {
		f.Fatal(err)
	}
	st, err := bboltstore.Open(filepath.Join(f.TempDir(), "db"), bboltstore.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	p, err := New(context.Background(), Config{UpstreamConfig: idp.UpstreamConfig{Name: "corp"}, BaseURL: "https://sp.example/login/corp", IdPMetadata: md,
		KeyStore: DirKeyStore(f.TempDir()), Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	sp, err := p.serviceProvider(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	return p, sp, md
}

// FuzzVerifyResponse: the SAMLResponse is attacker input. Nothing may
// panic, and nothing unsigned by the IdP's key may be accepted.
func FuzzVerifyResponse(f *testing.F) {
	p, sp, _ := fuzzProvider(f)
	const ns = `xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"`
	for _, s := range []string{
		``, `<x/>`, `<samlp:Response ` + ns + `/>`,
		`<samlp:Response ` + ns + ` ID="r" InResponseTo="id-x" Version="2.0"><saml:Issuer>https://idp.example/metadata</saml:Issuer>` +
			`<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
			`<saml:Assertion ID="a" Version="2.0"><saml:Issuer>https://idp.example/metadata</saml:Issuer><saml:Subject><saml:NameID>u</saml:NameID></saml:Subject></saml:Assertion></samlp:Response>`,
		`<samlp:Response ` + ns + `><saml:Assertion/><saml:Assertion/></samlp:Response>`,
		`<samlp:Response ` + ns + `><saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"/></saml:EncryptedAssertion></samlp:Response>`,
		`<!DOCTYPE x [<!ENTITY a "aaaa">]><samlp:Response ` + ns + `>&a;</samlp:Response>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ext, reason, err := p.verify(sp, raw, "id-x")
		if err == nil || reason == "" || ext.Subject != "" {
			t.Fatalf("accepted %q: %+v", raw, ext)
		}
	})
}

// FuzzParseIdPMetadata: metadata comes from the network (an https URL the
// operator trusts, but still parsed defensively).
func FuzzParseIdPMetadata(f *testing.F) {
	_, _, md := fuzzProvider(f)
	f.Add(md)
	f.Add([]byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"><EntityDescriptor entityID="x"/></EntitiesDescriptor>`))
	f.Add([]byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><IDPSSODescriptor/></EntityDescriptor>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ed, err := parseIdPMetadata(raw)
		if err != nil {
			return
		}
		if ed.EntityID == "" || len(ed.IDPSSODescriptors) == 0 {
			t.Fatalf("accepted %+v", ed)
		}
	})
}

// FuzzDecodeResponse: the form value's base64 layer.
func FuzzDecodeResponse(f *testing.F) {
	f.Add("PHg+PC94Pg==")
	f.Add("PHg+\r\nPC94Pg==")
	f.Add("")
	f.Add("<x/>")
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := decodeResponse(s)
		if err == nil && len(raw) == 0 {
			t.Fatal("empty response accepted")
		}
	})
}
