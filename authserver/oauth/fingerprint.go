package oauth

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Fingerprint hashes what the user consented to about a client, for every
// kind of client (owned, DCR, CIMD): a remembered consent holds only while
// the client's fingerprint is the one it was given for, so a change asks
// for fresh consent.
//
// The fields are the ones the consent page shows: the client's name and its
// redirect URIs (the page names the redirect host and warns when every
// redirect is loopback); the set of redirect URIs is order-insensitive and
// duplicates do not count. The client id is the key the consent is stored
// under, so it is not hashed. Logo and client URI are not shown, and are
// dropped when they are not https on a public name, so a change of them
// tells the user nothing new and does not re-ask consent.
//
// The encoding is domain-separated and length-prefixed, so no two inputs
// share a preimage. Hex SHA-256.
func Fingerprint(c storage.Client) string {
	uris := slices.Clone(c.RedirectURIs)
	slices.Sort(uris)
	uris = slices.Compact(uris)
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	write := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	h.Write([]byte("mcpauth-client-fingerprint-v1"))
	write(c.Name)
	for _, u := range uris {
		write(u)
	}
	return hex.EncodeToString(h.Sum(nil))
}
