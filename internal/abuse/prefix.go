package abuse

import (
	"net/netip"
	"strings"
)

// Default prefix lengths of budgets (limiters, throttles, stored-client caps).
const (
	DefaultIPv4Bits = 32
	DefaultIPv6Bits = 64
)

// InvalidSource is the key of every address that does not parse: they all
// share one budget.
const InvalidSource = "invalid"

// Prefixes says how many leading bits of an address identify a requester.
// Zero fields take the defaults (32 and 64); out-of-range values are clamped.
type Prefixes struct {
	IPv4 int
	IPv6 int
}

func (p Prefixes) bits() (v4, v6 int) {
	v4, v6 = p.IPv4, p.IPv6
	if v4 <= 0 {
		v4 = DefaultIPv4Bits
	}
	if v6 <= 0 {
		v6 = DefaultIPv6Bits
	}
	return min(v4, 32), min(v6, 128)
}

// Key returns the requester key of addr: the address itself when the prefix
// is the full length, else the masked prefix in CIDR form
// ("198.51.100.0/24", "2001:db8:1:2::/64"). An IPv4-mapped IPv6 address
// counts as IPv4 and a zone is ignored, so neither spelling escapes the
// budget. Anything else is InvalidSource.
func (p Prefixes) Key(addr string) string {
	a, ok := ParseAddr(addr)
	if !ok {
		return InvalidSource
	}
	v4, v6 := p.bits()
	bits := v6
	if a.Is4() {
		bits = v4
	}
	if bits == a.BitLen() {
		return a.String()
	}
	pfx, err := a.Prefix(bits)
	if err != nil {
		return InvalidSource
	}
	return pfx.String()
}

// ParseAddr parses a client address as Caddy reports it (no port; an IPv6
// literal may be bracketed or carry a zone). IPv4-mapped addresses are
// unmapped and zones dropped.
func ParseAddr(addr string) (netip.Addr, bool) {
	if len(addr) > 64 {
		return netip.Addr{}, false
	}
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
