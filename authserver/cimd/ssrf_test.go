package cimd

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

func TestIsPublicAddr(t *testing.T) {
	forbidden := []string{
		"0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254",
		"127.0.0.1", "127.255.255.254", "169.254.0.1", "169.254.169.254", "172.16.0.1", "172.31.255.255",
		"192.0.0.8", "192.0.2.1", "192.31.196.1", "192.52.193.1", "192.88.99.1", "192.168.1.1",
		"192.175.48.1", "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9", "224.0.0.1",
		"239.255.255.250", "240.0.0.1", "255.255.255.255",
		"::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
		"64:ff9b::7f00:1", "64:ff9b:1::1", "100::1", "2001::1", "2001:db8::1", "2001:2::1",
		"2002:7f00:1::1", "3fff::1", "5f00::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1",
		"ff02::1", "ff05::1:3",
	}
	for _, s := range forbidden {
		if IsPublicAddr(netip.MustParseAddr(s)) {
			t.Errorf("IsPublicAddr(%s) = true, want false", s)
		}
	}
	public := []string{
		"1.1.1.1", "8.8.8.8", "93.184.216.34", "100.63.255.255", "100.128.0.1", "172.15.255.255",
		"172.32.0.1", "192.167.1.1", "198.17.255.255", "223.255.255.254", "::ffff:8.8.8.8",
		"2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001:81b::200e",
	}
	for _, s := range public {
		if !IsPublicAddr(netip.MustParseAddr(s)) {
			t.Errorf("IsPublicAddr(%s) = false, want true", s)
		}
	}
	if IsPublicAddr(netip.Addr{}) {
		t.Error("zero address is public")
	}
	if IsPublicAddr(netip.MustParseAddr("2606:4700::1%eth0")) {
		t.Error("zoned address is public")
	}
}

// TestDialControl checks the socket-level check: the address actually
// dialled, after resolution, whatever the URL said.
func TestDialControl(t *testing.T) {
	prod, err := NewFetcher(FetcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := NewFetcher(FetcherConfig{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		network, addr string
		prodOK, devOK bool
	}{
		{"tcp4", "8.8.8.8:443", true, true},
		{"tcp6", "[2606:4700:4700::1111]:443", true, true},
		{"tcp4", "127.0.0.1:443", false, true},
		{"tcp4", "127.0.0.53:53", false, true},
		{"tcp6", "[::1]:443", false, true},
		{"tcp6", "[::ffff:127.0.0.1]:443", false, true},
		{"tcp4", "10.0.0.1:443", false, false},
		{"tcp4", "192.168.0.10:443", false, false},
		{"tcp4", "172.20.0.1:443", false, false},
		{"tcp4", "169.254.169.254:80", false, false},
		{"tcp6", "[::ffff:169.254.169.254]:80", false, false},
		{"tcp6", "[::ffff:10.0.0.1]:443", false, false},
		{"tcp6", "[fe80::1]:443", false, false},
		{"tcp6", "[fd00::1]:443", false, false},
		{"tcp4", "0.0.0.0:443", false, false},
		{"tcp4", "100.100.100.200:80", false, false}, // alibaba metadata (CGNAT range)
		{"udp4", "8.8.8.8:443", false, false},
		{"tcp4", "not-an-address", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.addr, func(t *testing.T) {
			for _, c := range []struct {
				name string
				f    *Fetcher
				ok   bool
			}{{"production", prod, tt.prodOK}, {"development", dev, tt.devOK}} {
				err := c.f.control(context.Background(), tt.network, tt.addr, nil)
				if (err == nil) != c.ok {
					t.Errorf("%s: control = %v, want allowed=%v", c.name, err, c.ok)
				}
				if err != nil && !errors.Is(err, ErrForbiddenAddress) {
					t.Errorf("%s: error %v is not ErrForbiddenAddress", c.name, err)
				}
			}
		})
	}
}
