package cimd

import (
	"slices"
	"testing"
)

// The built-in list covers the clients that onboard through CIMD, every
// entry is a valid production client id, and the derived hosts are exact.
func TestKnownClients(t *testing.T) {
	for _, c := range KnownClients() {
		if err := ValidClientIDURL(c.ClientID); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	want := []string{"chatgpt.com", "claude.ai", "vscode.dev"}
	if got := BuiltinTrustedHosts(); !slices.Equal(got, want) {
		t.Fatalf("BuiltinTrustedHosts = %v, want %v", got, want)
	}
	// A caller cannot change the list through the copy.
	cs := KnownClients()
	cs[0].ClientID = "https://evil.example/x"
	if KnownClients()[0].ClientID == cs[0].ClientID {
		t.Fatal("KnownClients returned the list itself")
	}
}

func TestExpandTrustedHosts(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, []string{"chatgpt.com", "claude.ai", "vscode.dev"}},
		{[]string{"tools.example.com"}, []string{"tools.example.com"}},
		{[]string{"builtin", "tools.example.com"}, []string{"chatgpt.com", "claude.ai", "vscode.dev", "tools.example.com"}},
		{[]string{"claude.ai", "builtin"}, []string{"claude.ai", "chatgpt.com", "vscode.dev"}},
	} {
		if got := ExpandTrustedHosts(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("ExpandTrustedHosts(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A resolver built from the expanded default trusts the vendors' documents
// and nothing else.
func TestBuiltinHostsTrusted(t *testing.T) {
	f, err := NewFetcher(FetcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(ResolverConfig{Fetcher: f, Policy: PolicyTrusted, TrustedHosts: ExpandTrustedHosts(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range KnownClients() {
		if !r.Trusted(c.ClientID) {
			t.Errorf("%s (%s) is not trusted by default", c.Name, c.ClientID)
		}
	}
	for _, id := range []string{"https://evil.example/claude.ai", "https://claude.ai.evil.example/x", "https://sub.claude.ai/x"} {
		if r.Trusted(id) {
			t.Errorf("%s is trusted by default", id)
		}
	}
}
