package resourceguard

import (
	"net/http/httptest"
	"testing"
)

// BenchmarkCheckCached is the hot path: a token already verified.
func BenchmarkCheckCached(b *testing.B) {
	f := newFixture(b, nil)
	r := bearerReq("POST", testResource, f.token(nil))
	if _, c := f.g.Check(r); c != nil {
		b.Fatal(c)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, c := f.g.Check(r); c != nil {
			b.Fatal(c)
		}
	}
}

// BenchmarkCheckUncached verifies an ES256 token from scratch every time.
func BenchmarkCheckUncached(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.CacheSize = -1 })
	r := bearerReq("POST", testResource, f.token(nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, c := f.g.Check(r); c != nil {
			b.Fatal(c)
		}
	}
}

// BenchmarkRefuseMalformed: missing and malformed tokens are refused before
// any cryptography.
func BenchmarkRefuseMalformed(b *testing.B) {
	f := newFixture(b, nil)
	cases := map[string]string{"missing": "", "malformed": "Bearer not-a-jwt", "garbage": "Bearer a.b"}
	for name, v := range cases {
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest("POST", testResource, nil)
			if v != "" {
				r.Header.Set("Authorization", v)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, c := f.g.Check(r); c == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
	if f.keys.calls.Load() != 0 {
		b.Fatal("a key was looked up for a malformed token")
	}
}

// BenchmarkWrapCached measures the whole middleware on the cached path.
func BenchmarkWrapCached(b *testing.B) {
	f := newFixture(b, nil)
	tok := f.token(nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		f.handler.ServeHTTP(w, bearerReq("POST", testResource, tok))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
