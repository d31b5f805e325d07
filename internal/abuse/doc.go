// Package abuse holds the bounded building blocks that keep unauthenticated
// traffic from exhausting memory, storage or other users' budgets
// (requirements 38 and 40):
//
//   - Prefixes maps a client address to the key budgets are counted under:
//     IPv4 by address (/32) and IPv6 by /64 by default, because one IPv6
//     subscriber usually holds a whole /64 and would otherwise get 2^64
//     budgets;
//   - LRU is a size-bounded table that evicts the least recently used entry
//     when full, so a spray of new keys costs old idle entries their state
//     instead of refusing every newcomer (fail open per key, never closed for
//     everyone);
//   - Limiter is a token bucket per prefix in an LRU, with an optional global
//     bucket that bounds the total rate whatever the number of prefixes;
//   - SharedBuckets lets a Limiter's buckets hold across instances (a
//     PostgreSQL table): decisions stay in memory, what an instance took is
//     sent in batches, each instance runs at most a tenth of the burst ahead
//     of the store, and a failing store falls back to the local buckets;
//   - Aggregator turns unauthenticated refusals (CSRF failures, throttled
//     logins, refused registrations) into one stored audit record per
//     (type, outcome, detail, source prefix, minute) carrying a count,
//     with a bounded number of keys and an "other" bucket for the overflow.
//
// The package knows nothing of HTTP or Caddy; callers pass Caddy's resolved
// client IP (never a raw X-Forwarded-For).
package abuse
