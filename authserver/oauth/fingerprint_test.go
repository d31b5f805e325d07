package oauth

import (
	"testing"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// TestFingerprint: one fingerprint for every kind of client. A change of the
// name or of the set of redirect URIs re-asks consent; order, duplicates,
// the kind and the fields the consent page does not show do not.
func TestFingerprint(t *testing.T) {
	base := storage.Client{ID: "c", Name: "App", RedirectURIs: []string{"https://a.example/cb", "http://localhost/cb"}}
	a := Fingerprint(base)
	if len(a) != 64 {
		t.Errorf("fingerprint %q is not hex sha-256", a)
	}
	same := map[string]storage.Client{
		"order":      {ID: "c", Name: "App", RedirectURIs: []string{"http://localhost/cb", "https://a.example/cb"}},
		"duplicate":  {ID: "c", Name: "App", RedirectURIs: []string{"http://localhost/cb", "https://a.example/cb", "http://localhost/cb"}},
		"kind":       {ID: "c", Kind: storage.ClientCIMD, Name: "App", RedirectURIs: base.RedirectURIs},
		"logo":       {ID: "c", Name: "App", RedirectURIs: base.RedirectURIs, LogoURI: "https://a.example/logo.png"},
		"client uri": {ID: "c", Name: "App", RedirectURIs: base.RedirectURIs, ClientURI: "https://a.example/"},
	}
	for name, c := range same {
		if Fingerprint(c) != a {
			t.Errorf("%s: fingerprint changed", name)
		}
	}
	differ := map[string]storage.Client{
		"name changed":     {Name: "App2", RedirectURIs: base.RedirectURIs},
		"redirect changed": {Name: "App", RedirectURIs: []string{"https://a.example/cb", "http://localhost/cb2"}},
		"redirect added":   {Name: "App", RedirectURIs: []string{"https://a.example/cb", "http://localhost/cb", "https://b.example/"}},
		"boundary moved":   {Name: "Apphttps://a.example/cb", RedirectURIs: []string{"http://localhost/cb"}},
	}
	for name, c := range differ {
		if Fingerprint(c) == a {
			t.Errorf("%s: same fingerprint", name)
		}
	}
	// The DCR and CIMD lanes stored fingerprints in this encoding before it
	// became the only one (dcr.Fingerprint): consents remembered for them
	// stay valid across the upgrade. The value was computed by the old
	// function.
	if a != "b7f8ace58f112795fae1ab06e2ca1a4c19a9b9222b1ece27cee180e45136afd5" {
		t.Errorf("fingerprint %s is not the stored v1 encoding", a)
	}
}

func TestIsCIMDClientID(t *testing.T) {
	for id, want := range map[string]bool{
		"https://claude.ai/oauth/claude-code-client-metadata": true,
		"https://x":         true,
		"http://x.example/": false,
		"HTTPS://x.example": false,
		"dcr_abc":           false,
		"my-client":         false,
		"":                  false,
	} {
		if got := IsCIMDClientID(id); got != want {
			t.Errorf("IsCIMDClientID(%q) = %v, want %v", id, got, want)
		}
	}
}
