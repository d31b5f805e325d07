package doctor

import (
	"testing"
)

func TestParseChallenge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		scheme string
		want   map[string]string
		ok     bool
	}{
		{"quoted", []string{`Bearer resource_metadata="https://x/.well-known/oauth-protected-resource/mcp", scope="a b"`}, "Bearer",
			map[string]string{"resource_metadata": "https://x/.well-known/oauth-protected-resource/mcp", "scope": "a b"}, true},
		{"case and token values", []string{`bearer Error=invalid_token`}, "Bearer", map[string]string{"error": "invalid_token"}, true},
		{"second challenge in one value", []string{`DPoP algs="ES256", Bearer resource_metadata="u"`}, "Bearer", map[string]string{"resource_metadata": "u"}, true},
		{"stops at the next scheme", []string{`Bearer realm="r", DPoP algs="ES256"`}, "Bearer", map[string]string{"realm": "r"}, true},
		{"second header value", []string{`Basic realm="x"`, `Bearer scope="s"`}, "Bearer", map[string]string{"scope": "s"}, true},
		{"escapes", []string{`Bearer error_description="say \"hi\""`}, "Bearer", map[string]string{"error_description": `say "hi"`}, true},
		{"first duplicate wins", []string{`Bearer scope="a", scope="b"`}, "Bearer", map[string]string{"scope": "a"}, true},
		{"bare scheme", []string{`Bearer`}, "Bearer", map[string]string{}, true},
		{"absent", []string{`Basic realm="x"`}, "Bearer", nil, false},
		{"scheme named as a param value is not a scheme", []string{`Basic realm=Bearer`}, "Bearer", nil, false},
		{"unterminated quote", []string{`Bearer scope="a`}, "Bearer", map[string]string{"scope": "a"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseChallenge(tc.values, tc.scheme)
			if ok != tc.ok || len(got) != len(tc.want) {
				t.Fatalf("got %v %v, want %v %v", got, ok, tc.want, tc.ok)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

// FuzzParseChallenge: a site's WWW-Authenticate is untrusted input to the
// doctor; the parser must never panic or loop, and a param it returns must
// come from the input.
func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{`Bearer resource_metadata="u"`, `DPoP algs="ES256", Bearer a=b`, `Bearer x="\"`, `=,=,"`, "Bearer \x00=\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		params, ok := ParseChallenge([]string{s}, "Bearer")
		if !ok && params != nil {
			t.Fatalf("no challenge but params %v", params)
		}
		for k, v := range params {
			if len(k) > len(s) || len(v) > len(s) {
				t.Fatalf("param %q=%q longer than the input", k, v)
			}
		}
	})
}
