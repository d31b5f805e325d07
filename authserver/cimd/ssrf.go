package cimd

import (
	"net/netip"
)

// Special-use address ranges (RFC 6890 and the IANA IPv4/IPv6
// Special-Purpose Address Registries). The draft (§8.6 in -02, "SSRF"):
// the authorization server "MUST NOT fetch a Client ID Metadata Document URL
// ... that resolve[s] to special-use IP addresses as defined in RFC 6890".
//
// IPv4 is a deny list. IPv6 is an allow list: only global unicast
// (2000::/3) is reachable at all, minus the special ranges inside it; that
// refuses ::/128, ::1, ::ffff:0:0/96 (after unmapping, the embedded IPv4 is
// checked instead), IPv4-compatible ::/96, 64:ff9b::/96 and 64:ff9b:1::/48
// (NAT64), 100::/64 (discard), fc00::/7, fe80::/10, fec0::/10, ff00::/8 and
// every reserved block outside 2000::/3.
var (
	deniedV4 = mustPrefixes(
		"0.0.0.0/8",          // "this network"
		"10.0.0.0/8",         // private
		"100.64.0.0/10",      // shared address space (CGNAT)
		"127.0.0.0/8",        // loopback
		"169.254.0.0/16",     // link-local, cloud metadata (169.254.169.254)
		"172.16.0.0/12",      // private
		"192.0.0.0/24",       // IETF protocol assignments
		"192.0.2.0/24",       // TEST-NET-1
		"192.31.196.0/24",    // AS112-v4
		"192.52.193.0/24",    // AMT
		"192.88.99.0/24",     // deprecated 6to4 relay anycast
		"192.168.0.0/16",     // private
		"192.175.48.0/24",    // direct delegation AS112
		"198.18.0.0/15",      // benchmarking
		"198.51.100.0/24",    // TEST-NET-2
		"203.0.113.0/24",     // TEST-NET-3
		"224.0.0.0/4",        // multicast
		"240.0.0.0/4",        // reserved
		"255.255.255.255/32", // limited broadcast (inside 240/4; kept explicit)
	)
	globalV6 = netip.MustParsePrefix("2000::/3")
	deniedV6 = mustPrefixes(
		"2001::/23",     // IETF protocol assignments (Teredo, ORCHID, benchmarking, AMT, AS112)
		"2001:db8::/32", // documentation
		"2002::/16",     // 6to4: embeds an IPv4 address
		"3fff::/20",     // documentation (RFC 9637)
		"5f00::/16",     // SRv6 SIDs (RFC 9602)
	)
	loopbackV4 = netip.MustParsePrefix("127.0.0.0/8")
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// IsPublicAddr reports whether ip is an ordinary public unicast address that
// a metadata fetch may connect to. IPv4-mapped IPv6 addresses are judged by
// the IPv4 address they carry; zoned addresses are never public.
func IsPublicAddr(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	ip = ip.Unmap()
	if ip.Is4() {
		for _, p := range deniedV4 {
			if p.Contains(ip) {
				return false
			}
		}
		return ip.IsGlobalUnicast() && !ip.IsPrivate()
	}
	if !globalV6.Contains(ip) {
		return false
	}
	for _, p := range deniedV6 {
		if p.Contains(ip) {
			return false
		}
	}
	// Defence in depth: the standard library's view must agree.
	return ip.IsGlobalUnicast() && !ip.IsPrivate()
}

// isLoopbackAddr reports whether ip is 127.0.0.0/8 (also IPv4-mapped) or ::1.
func isLoopbackAddr(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	ip = ip.Unmap()
	return loopbackV4.Contains(ip) || ip == netip.IPv6Loopback()
}
