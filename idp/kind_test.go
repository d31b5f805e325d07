package idp

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// registryKind is a kind that only names itself: the registry's tests do
// not build providers.
type registryKind struct{ name string }

func (k registryKind) Name() string            { return k.name }
func (k registryKind) NewOptions() KindOptions { return nil }
func (k registryKind) Build(context.Context, KindOptions, KindEnv) (Provider, error) {
	return nil, errors.New("registryKind builds nothing")
}

// jsonKind has options, for UpstreamOptions' JSON.
type jsonKind struct{ registryKind }

type jsonKindOptions struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name,omitempty"`
	URL         string `json:"url"`
}

func (jsonKind) NewOptions() KindOptions                    { return new(jsonKindOptions) }
func (o *jsonKindOptions) ProviderName() string             { return o.Name }
func (o *jsonKindOptions) SetProviderName(n string)         { o.Name = n }
func (o *jsonKindOptions) SetOption(string, []string) error { return nil }
func (o *jsonKindOptions) Validate() error                  { return nil }

// Registered once per test binary (init runs once even with -count=N).
func init() {
	RegisterKind(registryKind{"registry-test"})
	RegisterKind(jsonKind{registryKind{"json-test"}})
}

func TestRegisterAndLookupKind(t *testing.T) {
	k, ok := LookupKind("registry-test")
	if !ok || k.Name() != "registry-test" {
		t.Fatalf("LookupKind(registry-test) = %v, %v", k, ok)
	}
	if _, ok := LookupKind("nope"); ok {
		t.Fatal("LookupKind found an unregistered kind")
	}
	names := Kinds()
	if !slices.Contains(names, "registry-test") || !slices.IsSorted(names) {
		t.Fatalf("Kinds() = %v, want it sorted and holding registry-test", names)
	}
	if k, err := KindFor("registry-test"); err != nil || k.Name() != "registry-test" {
		t.Fatalf("KindFor(registry-test) = %v, %v", k, err)
	}
}

func TestKindForUnknown(t *testing.T) {
	_, err := KindFor("ldap-nope")
	if !errors.Is(err, ErrUnknownKind) || !strings.Contains(err.Error(), `"ldap-nope"`) || !strings.Contains(err.Error(), "registry-test") {
		t.Fatalf("KindFor(unknown) = %v, want ErrUnknownKind naming it and the registered kinds", err)
	}
}

func TestRegisterKindPanics(t *testing.T) {
	for name, k := range map[string]Kind{
		"duplicate":    registryKind{"registry-test"},
		"nil":          nil,
		"invalid name": registryKind{"Bad Kind"},
		"empty name":   registryKind{""},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("RegisterKind(%v) did not panic", k)
				}
			}()
			RegisterKind(k)
		})
	}
	if k, _ := LookupKind("registry-test"); k != (registryKind{"registry-test"}) {
		t.Fatal("a refused registration replaced the registered kind")
	}
}

func TestOptionArgHelpers(t *testing.T) {
	var s string
	var l []string
	var b bool
	var d Duration
	for _, c := range []struct {
		name string
		err  error
		ok   bool
	}{
		{"string one", StringArg("x", []string{"v"}, &s), true},
		{"string none", StringArg("x", nil, &s), false},
		{"string two", StringArg("x", []string{"a", "b"}, &s), false},
		{"list some", ListArg("x", []string{"a", "b"}, &l), true},
		{"list none", ListArg("x", nil, &l), false},
		{"flag", FlagArg("x", nil, &b), true},
		{"flag with arg", FlagArg("x", []string{"on"}, &b), false},
		{"duration", DurationArg("x", []string{"2d"}, &d), true},
		{"duration none", DurationArg("x", nil, &d), false},
	} {
		if (c.err == nil) != c.ok || (!c.ok && !errors.Is(c.err, ErrArgCount)) {
			t.Errorf("%s: err = %v, want ok %v (else ErrArgCount)", c.name, c.err, c.ok)
		}
		if c.err != nil && !strings.HasPrefix(c.err.Error(), "x: ") {
			t.Errorf("%s: error %q does not name the option", c.name, c.err)
		}
	}
	if s != "v" || !slices.Equal(l, []string{"a", "b"}) || !b || time.Duration(d) != 48*time.Hour {
		t.Fatalf("values: %q %v %v %v", s, l, b, time.Duration(d))
	}
	if err := DurationArg("ttl", []string{"soon"}, &d); err == nil || errors.Is(err, ErrArgCount) || !strings.HasPrefix(err.Error(), "ttl: ") {
		t.Fatalf("bad duration: %v", err)
	}
	err := UnknownOption("oidc", "implicit")
	if !errors.Is(err, ErrUnknownOption) || err.Error() != `unknown oidc option "implicit"` {
		t.Fatalf("UnknownOption = %v", err)
	}
}

// Duration reads Caddy's two JSON forms and writes nanoseconds.
func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`"720h"`:        720 * time.Hour,
		`"1d12h"`:       36 * time.Hour,
		`"1.5d"`:        36 * time.Hour,
		`3600000000000`: time.Hour,
	} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	for _, in := range []string{`"soon"`, `"1x"`, `true`, `"` + strings.Repeat("1", 1025) + `"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%s: accepted as %v", in, time.Duration(d))
		}
	}
	b, err := json.Marshal(struct {
		D Duration `json:"d"`
	}{Duration(time.Hour)})
	if err != nil || string(b) != `{"d":3600000000000}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
}

// The generic JSON form decodes "kind", then the kind's own options from
// the same object, and writes them back the same way.
func TestUpstreamOptionsJSON(t *testing.T) {
	in := `{"kind":"json-test","name":"corp","display_name":"Corp","url":"https://up.example/authorize"}`
	var u UpstreamOptions
	if err := json.Unmarshal([]byte(in), &u); err != nil {
		t.Fatal(err)
	}
	o, ok := u.Options.(*jsonKindOptions)
	if u.Kind != "json-test" || !ok || *o != (jsonKindOptions{Name: "corp", DisplayName: "Corp", URL: "https://up.example/authorize"}) {
		t.Fatalf("decoded %q %#v", u.Kind, u.Options)
	}
	out, err := json.Marshal(u)
	if err != nil || string(out) != in {
		t.Fatalf("encoded %s %v, want %s", out, err, in)
	}
	for src, want := range map[string]string{
		`{"name":"corp"}`:                      `"kind" must name a provider kind`,
		`{"kind":7}`:                           `"kind" must name a provider kind`,
		`{"kind":"ldap-nope","name":"corp"}`:   `unknown upstream provider kind "ldap-nope"`,
		`{"kind":"json-test","nmae":"corp"}`:   `unknown field "nmae"`,
		`{"kind":"json-test","name":["corp"]}`: "upstream json-test: json",
		`["json-test"]`:                        "cannot unmarshal array",
	} {
		var u UpstreamOptions
		if err := json.Unmarshal([]byte(src), &u); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
	if b, err := json.Marshal(UpstreamOptions{Kind: "json-test"}); err != nil || string(b) != `{"kind":"json-test"}` {
		t.Fatalf("no options: %s %v", b, err)
	}
	if b, err := json.Marshal(UpstreamOptions{Kind: "json-test", Options: &jsonKindOptions{Name: "c"}}); err != nil ||
		string(b) != `{"kind":"json-test","name":"c","url":""}` {
		t.Fatalf("sparse options: %s %v", b, err)
	}
}
