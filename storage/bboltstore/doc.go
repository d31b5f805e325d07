// Package bboltstore is the embedded storage backend of caddy-mcpauth: every
// role of package storage (storage.Backend) on one go.etcd.io/bbolt file.
//
// It suits a single Caddy instance. The file is locked by the process that
// opens it; Caddy provisions a new configuration before it stops the old one,
// so the caddy module shares one *Store per file across reloads (through
// caddy.UsagePool) and Options.Timeout bounds the wait on the lock.
//
// # Bucket tree (schema version 1)
//
// All values are JSON documents of the storage records, decoded inside the
// transaction that read them. Keys written "lp(x)" are a 2-byte big-endian
// length followed by x, so composite keys are unambiguous and prefix-scannable.
// Keys written "hash" are the SHA-256 (32 bytes) the caller passes: codes,
// refresh tokens, session ids and ticket keys are never stored in the clear.
//
//	meta/
//	  schema_version           8-byte big-endian; the number of migrations applied
//	v1/
//	  clients/                 client id                    -> storage.Client
//	  codes/                   hash                         -> storage.AuthCode (UsedAt set once redeemed)
//	  grants/                  grant id                     -> storage.Grant
//	  refresh_index/           hash                         -> grant id; every refresh token ever issued
//	                                                           in a family, kept until the grant is deleted
//	                                                           (reuse detection, GrantByRefresh)
//	  refresh_by_grant/        lp(grant id) hash            -> empty (to drop refresh_index entries)
//	  grants_by_client/        lp(client id) grant id       -> empty
//	  grants_by_subject/       lp(subject) grant id         -> empty
//	  keys/                    kid                          -> storage.SigningKey
//	  consents/                lp(client id) subject        -> storage.Consent
//	  accounts/                account id                   -> storage.Account
//	  accounts_by_email/       lower-cased email            -> account id (accounts with an email only)
//	  identities/              lp(provider) upstream subject -> account id
//	  sessions/                hash                         -> storage.Session
//	  sessions_by_account/     lp(account id) hash          -> empty
//	  tickets/                 hash                         -> storage.Ticket (kind inside)
//	  email_verifications/     hash                         -> storage.EmailVerification (schema 2)
//	  email_verifications_by_account/ lp(account id) hash   -> empty (schema 2)
//	  replays/                 hash(issuer, jti)            -> {expires_at} (schema 3; used assertion ids)
//	  audit/                   8-byte BE unix nanos of the event time, 8-byte BE sequence
//	                                                        -> storage.AuditEvent
//
// A new layout gets a new top-level bucket (v2/...) and a migration that
// copies the data over; the migrations are an ordered list, each applied in
// its own write transaction together with the new schema_version, so a crash
// leaves the file at a consistent version. Opening a file written by a newer
// build (a higher schema_version) fails rather than guessing.
//
// # Transactions
//
// The "use once" rules are single write transactions: RedeemCode marks the
// code used and creates the grant in one db.Update; RotateRefresh reads the
// grant, checks the presented token and either rotates or revokes the family
// in one db.Update. Write transactions are never nested: the callbacks a
// caller hands to RedeemCode (issue) and RotateRefresh (Rotation.Check) run
// inside the transaction and must not call the store. AppendAudit goes
// through db.Batch, which coalesces concurrent appends into one commit.
//
// The semantics every backend shares (refresh rotation and reuse, what a
// refused call leaves behind, orderings) are written down and tested in
// package storagetest; this package passes that suite. The rotation
// decision itself is storage.RotateGrant, shared with every backend.
//
// DeleteExpired runs in one write transaction and scans the codes, tickets,
// email verifications, consents, sessions and grants buckets; run it periodically (minutes),
// not per request. Backup copies the file from a read transaction while
// writers carry on.
//
// Export and Import (storage.Snapshotter, used by `caddy-mcpauth mcpauth
// migrate-store`) move a whole store to another backend: Export emits every
// record from one read transaction (refresh families with every hash ever
// issued, audit events oldest first); Import fills an empty file in one
// write transaction, all or nothing, keeping ids, times and used/revoked
// states (audit events get fresh keys in arrival order, so their order is
// kept). For a large store (storage.BatchImporter, what migrate-store uses)
// BeginImport checks the file is empty and sets meta/copy_incomplete,
// ImportBatch writes each batch in a write transaction of its own (bbolt
// holds a transaction's dirty pages in memory until it commits, so memory
// follows the batch, not the store), FinishImport deletes the key; Open
// refuses a file where it is set (storage.ErrIncompleteCopy).
package bboltstore
