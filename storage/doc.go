// Package storage holds the records the authorization server and the hosted
// login persist, the sentinel errors every backend returns, and the small role
// interfaces (Clients, Codes, Grants, Keys, Consents, Accounts, Sessions,
// Tickets, Audit) that backends implement.
//
// The roles live in this leaf package rather than in their consumers so that
// backends (bboltstore, pgstore) and the shared conformance suite
// (storagetest) depend on nothing but this package; each consumer still
// declares the composition it needs (authserver.Store, idp.Store) and depends
// only on that. No backend type appears here.
//
// Secrets are never stored in the clear: codes, refresh tokens, session ids
// and ticket keys are stored under their SHA-256, client secrets and
// passwords as PHC hashes.
package storage
