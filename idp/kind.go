package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// The registry of upstream provider kinds. A kind (idp/oidc, idp/saml, a
// future GitHub OAuth or LDAP package) registers itself in init; the Caddy
// adapter then configures and builds its providers without knowing it:
// JSON decodes into the kind's options, Caddyfile subdirectives go through
// KindOptions.SetOption, and Kind.Build makes the Provider.

// Kind is one kind of upstream identity provider.
type Kind interface {
	// Name is the kind's id ("oidc", "saml"): the Caddyfile directive, the
	// JSON "kind" and the prefix of the session's method (UpstreamInfo.Kind).
	Name() string
	// NewOptions returns a fresh, empty options value: a pointer to a
	// JSON-tagged struct that JSON or SetOption fill.
	NewOptions() KindOptions
	// Build validates opts (a value NewOptions returned) and makes the
	// provider. ctx is the server's run context: it ends when the config
	// is unloaded.
	Build(ctx context.Context, opts KindOptions, env KindEnv) (Provider, error)
}

// KindOptions is the configuration of one provider of a kind, as the
// operator writes it.
type KindOptions interface {
	// ProviderName is the provider's name (ValidProviderName).
	ProviderName() string
	// SetProviderName sets it (the Caddyfile gives it as the block's argument).
	SetProviderName(name string)
	// SetOption sets one option from a Caddyfile-like subdirective line
	// "name args...". Errors name the option; a wrong number of arguments
	// wraps ErrArgCount and an unknown option wraps ErrUnknownOption.
	SetOption(name string, args []string) error
	// Validate checks what the options alone can tell, once every line is
	// set (the rest, such as URLs, is Build's).
	Validate() error
}

// KindEnv is what the server gives a kind to build a provider.
type KindEnv struct {
	// BaseURL is the absolute URL of the provider's routes,
	// ProviderBaseURL(public URL, path prefix, name).
	BaseURL string
	// Store holds the provider's single-use tickets (the idp's store).
	Store storage.Tickets
	// Logger receives operational logs (nil: discarded).
	Logger *slog.Logger
	// KeyStore persists small blobs such as generated key pairs (Caddy's
	// storage in the server).
	KeyStore KeyStore
	// Replace expands placeholders such as {env.NAME} in the options that
	// accept them (nil: none are replaced).
	Replace func(string) string
}

// Expand applies Replace to s (s itself when Replace is nil).
func (e KindEnv) Expand(s string) string {
	if e.Replace == nil {
		return s
	}
	return e.Replace(s)
}

// KeyStore persists small blobs. Load returns an error wrapping
// fs.ErrNotExist or storage.ErrNotFound when key is absent.
// certmagic.Storage satisfies it.
type KeyStore interface {
	Load(ctx context.Context, key string) ([]byte, error)
	Store(ctx context.Context, key string, value []byte) error
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]Kind{}
)

// RegisterKind makes a kind available by its name. It panics when k is nil,
// its name is not a valid provider name, or a kind of that name is already
// registered (like database/sql.Register): call it from init.
func RegisterKind(k Kind) {
	if k == nil {
		panic("idp: RegisterKind: nil kind")
	}
	n := k.Name()
	if !ValidProviderName(n) {
		panic(fmt.Sprintf("idp: RegisterKind: kind name %q must be 1-32 lower-case letters, digits or -", n))
	}
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[n]; dup {
		panic(fmt.Sprintf("idp: RegisterKind: kind %q registered twice", n))
	}
	kinds[n] = k
}

// LookupKind returns the registered kind of that name.
func LookupKind(name string) (Kind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// Kinds returns the names of the registered kinds, sorted.
func Kinds() []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	out := make([]string, 0, len(kinds))
	for n := range kinds {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ErrUnknownKind is returned by KindFor for a name no package registered.
var ErrUnknownKind = errors.New("idp: unknown upstream provider kind")

// KindFor is LookupKind with an error that lists the registered kinds.
func KindFor(name string) (Kind, error) {
	if k, ok := LookupKind(name); ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q (registered: %v)", ErrUnknownKind, name, Kinds())
}

// Errors of KindOptions.SetOption.
var (
	ErrArgCount      = errors.New("wrong argument count")
	ErrUnknownOption = errors.New("unknown option")
)

// StringArg sets *dst from the single argument of option name.
func StringArg(name string, args []string, dst *string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s: %w (want 1)", name, ErrArgCount)
	}
	*dst = args[0]
	return nil
}

// ListArg sets *dst from one or more arguments of option name.
func ListArg(name string, args []string, dst *[]string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s: %w (want at least 1)", name, ErrArgCount)
	}
	*dst = slices.Clone(args)
	return nil
}

// FlagArg sets *dst to true for option name, which takes no argument.
func FlagArg(name string, args []string, dst *bool) error {
	if len(args) != 0 {
		return fmt.Errorf("%s: %w (want none)", name, ErrArgCount)
	}
	*dst = true
	return nil
}

// DurationArg sets *dst from the single duration argument of option name
// (ParseDuration).
func DurationArg(name string, args []string, dst *Duration) error {
	var s string
	if err := StringArg(name, args, &s); err != nil {
		return err
	}
	d, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	*dst = Duration(d)
	return nil
}

// UnknownOption is the error of SetOption for an option the kind lacks:
// `unknown <kind> option "<name>"`, wrapping ErrUnknownOption.
func UnknownOption(kind, name string) error {
	return unknownOptionError{kind, name}
}

type unknownOptionError struct{ kind, name string }

func (e unknownOptionError) Error() string {
	return fmt.Sprintf("unknown %s option %q", e.kind, e.name)
}

func (e unknownOptionError) Is(target error) bool { return target == ErrUnknownOption }
