package bboltstore

import (
	"bytes"
	"testing"
)

// FuzzCompositeKey checks the lp encoding that composite keys and index
// prefixes rely on. Its parts come from outside (client ids are CIMD URLs,
// subjects and upstream identities come from identity providers), so two
// different pairs must never share a key, and a prefix scan for one first
// part must never reach another's entries.
func FuzzCompositeKey(f *testing.F) {
	f.Add("a", "bc", "ab", "c")
	f.Add("client-1", "grant", "client-10", "grant")
	f.Add("", "x", "x", "")
	f.Add("https://app.example/cimd.json", "g1", "https://app.example/cimd.json", "g1")
	f.Add("\x00\x01", "", "", "\x00\x01")
	f.Fuzz(func(t *testing.T, a1, b1, a2, b2 string) {
		if len(a1) > maxComposite || len(a2) > maxComposite {
			return // refused by checkComposite before any write
		}
		k1, k2 := lp(a1, []byte(b1)), lp(a2, []byte(b2))
		if same := a1 == a2 && b1 == b2; same != bytes.Equal(k1, k2) {
			t.Fatalf("lp(%q,%q)=%x lp(%q,%q)=%x", a1, b1, k1, a2, b2, k2)
		}
		if hasPrefix(k2, lp(a1)) != (a1 == a2) {
			t.Fatalf("prefix scan for %q reaches the entry (%q,%q)", a1, a2, b2)
		}
		if !bytes.Equal(k1[len(lp(a1)):], []byte(b1)) {
			t.Fatalf("suffix of lp(%q,%q) is not %q", a1, b1, b1)
		}
	})
}
