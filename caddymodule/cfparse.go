package caddymodule

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Every Caddyfile block of this module is parsed by parseBlock from a table
// of subdirectives built from the typed setters below, so that argument
// counts are checked, and refused with the same words, in one place. Each
// error comes from d.Errf or d.ArgErr, which carry the file:line.

// opt parses one subdirective; the cursor is on its name.
type opt func(d *caddyfile.Dispenser) error

// opts is a block's table: subdirective name to parser.
type opts map[string]opt

// parseBlock parses the block that opens on the cursor's line. what names
// the block's entries in the refusal of an unknown one ("mcp_auth option").
func parseBlock(d *caddyfile.Dispenser, what string, table opts) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		set, ok := table[d.Val()]
		if !ok {
			return d.Errf("unknown %s %q", what, d.Val())
		}
		if err := set(d); err != nil {
			return err
		}
	}
	return nil
}

// block is a subdirective without arguments that opens a block of its own.
func block(what string, table opts) opt {
	return func(d *caddyfile.Dispenser) error {
		if d.NextArg() {
			return d.ArgErr()
		}
		return parseBlock(d, what, table)
	}
}

// named reads the one argument naming a block (`client <id> { … }`); when
// it is missing, missing is the error (ArgErr if empty).
func named(d *caddyfile.Dispenser, p *string, missing string) error {
	if !d.NextArg() {
		if missing == "" {
			return d.ArgErr()
		}
		return d.Err(missing)
	}
	*p = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// arg reads exactly one argument.
func arg(d *caddyfile.Dispenser) (string, error) {
	var v string
	if !d.AllArgs(&v) {
		return "", d.ArgErr()
	}
	return v, nil
}

// str sets *p from exactly one argument (the last use wins).
func str(p *string) opt {
	return func(d *caddyfile.Dispenser) error {
		if !d.AllArgs(p) {
			return d.ArgErr()
		}
		return nil
	}
}

// strs appends one or more arguments to *p.
func strs(p *[]string) opt {
	return func(d *caddyfile.Dispenser) error {
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		*p = append(*p, args...)
		return nil
	}
}

// anyStrs appends zero or more arguments to *p.
func anyStrs(p *[]string) opt {
	return func(d *caddyfile.Dispenser) error {
		*p = append(*p, d.RemainingArgs()...)
		return nil
	}
}

// present sets *p by the subdirective's presence; it takes no argument.
func present(p *bool) opt {
	return func(d *caddyfile.Dispenser) error {
		if d.NextArg() {
			return d.ArgErr()
		}
		*p = true
		return nil
	}
}

// onOff sets *p from exactly one argument, on or off.
func onOff(p *bool) opt { return onOffWords(p, "on", "off") }

// onOffPtr sets *p from one of on/true/yes or off/false/no: a pointer keeps
// "not set" (the default) apart from an explicit off.
func onOffPtr(p **bool) opt {
	return func(d *caddyfile.Dispenser) error {
		var b bool
		if err := onOffWords(&b, "on", "off", "true", "false", "yes", "no")(d); err != nil {
			return err
		}
		*p = &b
		return nil
	}
}

// onOffWords accepts words in on/off pairs: words[0] on, words[1] off, ….
func onOffWords(p *bool, words ...string) opt {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		v, err := arg(d)
		if err != nil {
			return err
		}
		for i, w := range words {
			if v == w {
				*p = i%2 == 0
				return nil
			}
		}
		return d.Errf("%s: want on or off, not %q", name, v)
	}
}

// oneOf sets *p from exactly one argument, one of choices.
func oneOf(p *string, choices ...string) opt {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		v, err := arg(d)
		if err != nil {
			return err
		}
		for _, c := range choices {
			if v == c {
				*p = v
				return nil
			}
		}
		last := len(choices) - 1
		return d.Errf("%s: %q: want %s or %s", name, v, strings.Join(choices[:last], ", "), choices[last])
	}
}

// unbounded is intArg's "no upper bound".
const unbounded = math.MaxInt

// intArg sets *p from one whole number in [lo, hi]. The conversion to T
// wraps as a plain conversion does (max_conns is an int32).
func intArg[T ~int | ~int32 | ~int64](p *T, lo, hi int) opt {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		v, err := arg(d)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0:
			return d.Errf("%s: %q is not a whole number", name, v)
		case n < lo && lo == 1 && hi == unbounded:
			return d.Errf("%s %d is not a positive number", name, n)
		case n < lo || n > hi:
			return d.Errf("%s %d must be between %d and %d", name, n, lo, hi)
		}
		*p = T(n)
		return nil
	}
}

// dur sets *p from one duration (caddy.ParseDuration: 1h, 30s, 7d). It is
// generic so that it serves every duration type with an int64 underneath.
func dur[T ~int64](p *T) opt {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		v, err := arg(d)
		if err != nil {
			return err
		}
		td, err := caddy.ParseDuration(v)
		if err != nil {
			return d.Errf("%s: %v", name, err)
		}
		*p = T(td)
		return nil
	}
}

// durPtr is dur for a field where an explicit 0 differs from "not set".
func durPtr[T ~int64](p **T) opt {
	return func(d *caddyfile.Dispenser) error {
		v := new(T)
		if err := dur(v)(d); err != nil {
			return err
		}
		*p = v
		return nil
	}
}

// durOrOff sets *p from a positive duration, or -1 for off.
func durOrOff[T ~int64](p *T) opt {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		v, err := arg(d)
		if err != nil {
			return err
		}
		if v == "off" {
			*p = -1
			return nil
		}
		td, err := caddy.ParseDuration(v)
		if err != nil || td <= 0 {
			return d.Errf("%s %q is not a positive duration or off", name, v)
		}
		*p = T(td)
		return nil
	}
}

// posDur sets *p from one positive duration, at most most (0: no bound).
func posDur[T ~int64](p *T, most time.Duration) opt {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		if err := dur(p)(d); err != nil {
			return err
		}
		if *p <= 0 {
			return d.Errf("%s must be positive", name)
		}
		if most > 0 && time.Duration(*p) > most {
			return d.Errf("%s %s is longer than %s", name, time.Duration(*p), most)
		}
		return nil
	}
}

// setDur stores a parsed duration in any duration type.
func setDur[T ~int64](p *T, v time.Duration) { *p = T(v) }
