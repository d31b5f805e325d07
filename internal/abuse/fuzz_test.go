package abuse

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// FuzzAggregateKey derives aggregation keys from attacker-controlled
// addresses and reasons: the key is deterministic, bounded and printable,
// its source is a prefix that contains the address (or InvalidSource), and
// addresses of one /24 or /64 share it.
func FuzzAggregateKey(f *testing.F) {
	for _, s := range [][3]string{
		{"198.51.100.7", "missing", "/login"},
		{"::ffff:198.51.100.7", "origin", "/signup"},
		{"[2001:db8::1]", "throttled", "x=y&z"},
		{"fe80::1%eth0", "\x00\xff", strings.Repeat("é", 100)},
		{"", "", ""},
		{"1.2.3.4:80", "a\u202eb", "\r\n"},
	} {
		f.Add(s[0], s[1], s[2], int64(1700000000))
	}
	p := Prefixes{IPv4: AggregateIPv4Bits, IPv6: AggregateIPv6Bits}
	f.Fuzz(func(t *testing.T, ip, reason, path string, sec int64) {
		ev := storage.AuditEvent{Type: "csrf.failure", Outcome: reason, IP: ip, Time: time.Unix(sec, 0),
			Detail: map[string]string{"reason": reason, path: path}}
		k := KeyOf(ev, p)
		if k != KeyOf(ev, p) {
			t.Fatal("key not deterministic")
		}
		for _, s := range []string{k.Type, k.Outcome, k.Subject, k.ClientID} {
			if len(s) > maxField || !utf8.ValidString(s) || strings.ContainsAny(s, "=&\x00\r\n") {
				t.Fatalf("field %q not bounded or not clean", s)
			}
		}
		if len(k.Detail) > maxDetail*(2*maxField+2) || !utf8.ValidString(k.Detail) {
			t.Fatalf("detail %q not bounded", k.Detail)
		}
		if k.Minute%60 != 0 || k.Minute > sec || sec-k.Minute >= 60 {
			t.Fatalf("minute %d of %d", k.Minute, sec)
		}
		// The stored record round-trips the key's detail.
		rec := k.record(3, false)
		if rec.Detail[DetailCount] != "3" || rec.IP != k.Source {
			t.Fatalf("record %+v", rec)
		}
		a, ok := ParseAddr(ip)
		if !ok {
			if k.Source != InvalidSource {
				t.Fatalf("unparsable %q got source %q", ip, k.Source)
			}
			return
		}
		pfx, err := netip.ParsePrefix(k.Source)
		if err != nil {
			t.Fatalf("source %q of %q is not a prefix: %v", k.Source, ip, err)
		}
		if !pfx.Contains(a) || (a.Is4() && pfx.Bits() != 24) || (a.Is6() && pfx.Bits() != 64) {
			t.Fatalf("source %q does not cover %q", k.Source, ip)
		}
		// Another address of the same prefix has the same key.
		b := a.As16()
		if a.Is4() {
			b[15] ^= 0xff
		} else {
			b[9] ^= 0xff
		}
		other := netip.AddrFrom16(b).Unmap()
		ev.IP = other.String()
		if KeyOf(ev, p) != k {
			t.Fatalf("%q and %q of one prefix have different keys", ip, other)
		}
	})
}
