package cimd

import (
	"errors"
	"time"
)

// Sentinel errors. Every error of ValidClientIDURL, Fetch, ValidateDocument
// and Resolve matches exactly one of the first four with errors.Is; fetch
// errors may also match ErrForbiddenAddress or ErrRateLimited. Their
// messages are safe to show to the end user: they name a short reason and
// never echo document content or resolved addresses.
var (
	// ErrInvalidClientID: the client_id is not a valid Client Identifier URL.
	ErrInvalidClientID = errors.New("cimd: invalid client id url")
	// ErrUntrustedHost: the client_id host is not allowed by the policy.
	ErrUntrustedHost = errors.New("cimd: client id host is not trusted")
	// ErrFetch: the metadata document could not be retrieved.
	ErrFetch = errors.New("cimd: metadata document fetch failed")
	// ErrInvalidDocument: the metadata document was retrieved but refused.
	ErrInvalidDocument = errors.New("cimd: invalid metadata document")

	// ErrForbiddenAddress (with ErrFetch): the host resolved to a
	// special-use address; no connection was made to it.
	ErrForbiddenAddress = errors.New("cimd: address not allowed")
	// ErrRateLimited (with ErrFetch): the per-host rate or concurrency limit
	// refused the fetch; nothing was sent.
	ErrRateLimited = errors.New("cimd: too many fetches for this host")
	// ErrTooLarge (with ErrFetch): the document is larger than MaxBytes.
	ErrTooLarge = errors.New("cimd: metadata document too large")
	// ErrTemporary (with ErrFetch): the failure may pass (a budget or a
	// slot refused the fetch, a timeout, a network error, a 5xx, 408 or 429
	// answer). Such errors also have the methods Temporary() bool (true)
	// and RetryAfter() time.Duration: the authorization server answers
	// 503 temporarily_unavailable with Retry-After, never invalid_client.
	// A permanent failure (404, too large, invalid document, forbidden
	// address, redirect, TLS) does not match it.
	ErrTemporary = errors.New("cimd: temporary failure")
)

// fetchError is an ErrFetch with a safe reason. The underlying error (which
// can carry resolved addresses) is reachable through errors.Is/As for the
// operator's logs but is not part of the message.
type fetchError struct {
	reason    string
	kind      error // optional second sentinel (ErrForbiddenAddress, ErrRateLimited)
	cause     error
	temporary bool
	retry     time.Duration // suggested wait of a temporary failure (0: default)
}

func (e *fetchError) Error() string { return ErrFetch.Error() + ": " + e.reason }

func (e *fetchError) Unwrap() []error {
	errs := []error{ErrFetch}
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.temporary {
		errs = append(errs, ErrTemporary)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// Reason is the short, safe reason of a fetch error (for audit details).
func (e *fetchError) Reason() string { return e.reason }

// Temporary reports whether the failure may pass on a later try.
func (e *fetchError) Temporary() bool { return e.temporary }

// RetryAfter suggests how long to wait before trying again (whole
// seconds, at least one, at most a minute); zero for a permanent failure.
func (e *fetchError) RetryAfter() time.Duration {
	if !e.temporary {
		return 0
	}
	d := e.retry
	if d <= 0 {
		d = defaultRetryAfter
	}
	d = (d + time.Second - 1).Truncate(time.Second)
	return min(max(d, time.Second), maxRetryAfter)
}

// withRetry is a copy of e suggesting d.
func (e *fetchError) withRetry(d time.Duration) *fetchError {
	c := *e
	c.retry = d
	return &c
}

// docError is an ErrInvalidDocument with a safe reason.
type docError struct{ reason string }

func (e *docError) Error() string  { return ErrInvalidDocument.Error() + ": " + e.reason }
func (e *docError) Unwrap() error  { return ErrInvalidDocument }
func (e *docError) Reason() string { return e.reason }

func invalidDoc(reason string) error { return &docError{reason: reason} }
