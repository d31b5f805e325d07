package idp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// UpstreamOptions is one provider of any registered kind in a JSON config:
// a single object holding "kind" and the kind's options,
// e.g. {"kind": "github", "name": "gh", ...}.
type UpstreamOptions struct {
	// Kind is the registered kind's name.
	Kind string
	// Options are the kind's options (a value of its NewOptions).
	Options KindOptions
}

// UnmarshalJSON decodes "kind", then the kind's options from the same
// object. Unknown fields are refused (as Caddy refuses them in the rest of
// its config).
func (u *UpstreamOptions) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	var name string
	if err := json.Unmarshal(fields["kind"], &name); err != nil || name == "" {
		return errors.New(`upstream: "kind" must name a provider kind`)
	}
	k, err := KindFor(name)
	if err != nil {
		return err
	}
	delete(fields, "kind")
	rest, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	opts := k.NewOptions()
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(opts); err != nil {
		return fmt.Errorf("upstream %s: %w", name, err)
	}
	u.Kind, u.Options = name, opts
	return nil
}

// MarshalJSON writes "kind" first, then the options' fields.
func (u UpstreamOptions) MarshalJSON() ([]byte, error) {
	kind, err := json.Marshal(u.Kind)
	if err != nil {
		return nil, err
	}
	opts := []byte("{}")
	if u.Options != nil {
		if opts, err = json.Marshal(u.Options); err != nil {
			return nil, err
		}
	}
	if len(opts) < 2 || opts[0] != '{' {
		return nil, fmt.Errorf("upstream %s: options must encode as a JSON object", u.Kind)
	}
	out := append([]byte(`{"kind":`), kind...)
	if len(opts) > 2 {
		out = append(out, ',')
	}
	return append(out, opts[1:]...), nil
}
