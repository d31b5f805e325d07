// Package password hashes and verifies local account passwords with argon2id
// (RFC 9106) and applies the password policy of NIST SP 800-63B §5.1.1.2.
//
// Hashes are PHC strings:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64 raw std>$<key, base64 raw std>
//
// The default parameters are OWASP's argon2id minimum (m=19 MiB, t=2, p=1,
// requirement 15); a Hasher may be configured upward, never below. Verify
// reports when a stored hash uses weaker parameters than the Hasher so the
// caller can rehash after a successful login. VerifyDummy runs the same work
// against a fixed hash so that a login for an unknown user costs the same
// time as one for a known user.
//
// The policy (Check) rejects only what 800-63B says to reject: passwords
// shorter than 8 or longer than 256 characters, and passwords found on a list
// of the most common ones or equal to the user's own email. It imposes no
// composition rules.
package password
