package oauth

import "strings"

// IsCIMDClientID reports whether a client_id is meant as a Client ID
// Metadata Document URL (draft-ietf-oauth-client-id-metadata-document §3):
// it starts with "https://". This decides the lane: such ids are resolved
// by fetching the document, every other id is looked up in the store.
// Whether the URL is a valid one is the cimd package's job
// (cimd.ValidClientIDURL). No id this server issues or accepts for an owned
// client starts so (DCR ids start with "dcr_").
func IsCIMDClientID(clientID string) bool {
	return strings.HasPrefix(clientID, "https://")
}
