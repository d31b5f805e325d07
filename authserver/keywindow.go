package authserver

import "time"

// The key-publication window: a retired signing key stays in the JWKS at
// least as long as a token it signed may still be presented. The server
// owns this default because only it knows every access-token lifetime it
// mints.

// keyPublishFor is twice the longest access-token lifetime cfg can mint:
// the server's, an owned client's, a CIMD policy's (cfg has its defaults).
func (cfg Config) keyPublishFor() time.Duration {
	longest := cfg.AccessTokenTTL
	for _, c := range cfg.Clients {
		longest = max(longest, c.AccessTokenTTL)
	}
	for _, p := range cfg.CIMDPolicy.Clients {
		longest = max(longest, p.AccessTokenTTL)
	}
	for _, p := range cfg.CIMDPolicy.Hosts {
		longest = max(longest, p.AccessTokenTTL)
	}
	return 2 * longest
}

// publishAtLeast raises the key set's publication window to d (never
// lowers it): a key set built before the server knew its lifetimes.
func (k *KeySet) publishAtLeast(d time.Duration) {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	if k.cfg.PublishFor < d {
		k.cfg.PublishFor = d
	}
}

// PublishFor returns how long a retired key stays published (see
// KeyConfig.PublishFor).
func (k *KeySet) PublishFor() time.Duration {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	return k.cfg.PublishFor
}
