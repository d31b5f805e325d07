package caddymodule

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Every Caddyfile block of this module is parsed by parseBlock from a table
// of subdirectives built from the typed setters below, so that argument
// counts are checked, and refused with the same words, in one place. Every
// error goes through d.Errf, d.WrapErr or d.ArgErr, which add the file:line.

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

// nargs is a subdirective of lo to hi arguments (hi < 0: no limit) handed
// to set. A wrong count is an ArgErr, or usage formatted with the
// subdirective's name ("%s <burst> <refill interval>").
func nargs(lo, hi int, usage string, set func(d *caddyfile.Dispenser, args []string) error) opt {
	return func(d *caddyfile.Dispenser) error {
		name, args := d.Val(), d.RemainingArgs()
		if len(args) >= lo && (hi < 0 || len(args) <= hi) {
			return set(d, args)
		}
		if usage == "" {
			return d.ArgErr()
		}
		return d.Errf(usage, name)
	}
}

// arg1 is a subdirective of exactly one argument, which parse turns into
// *p or refuses (its error is given the subdirective's name).
func arg1[T any](p *T, parse func(name, v string) (T, error)) opt {
	return func(d *caddyfile.Dispenser) error {
		name := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return d.ArgErr()
		}
		x, err := parse(name, v)
		if err != nil {
			return d.WrapErr(err)
		}
		*p = x
		return nil
	}
}

// checked is arg1 with a parse that only says yes or no; msg is formatted
// with the subdirective's name and the argument (%[1]s, %[2]q).
func checked[T any](p *T, msg string, parse func(v string) (T, bool)) opt {
	return arg1(p, func(name, v string) (T, error) {
		x, ok := parse(v)
		if !ok {
			return x, fmt.Errorf(msg, name, v)
		}
		return x, nil
	})
}

// str sets *p from exactly one argument (the last use wins).
func str(p *string) opt { return arg1(p, func(_, v string) (string, error) { return v, nil }) }

// strs appends one or more arguments to *p.
func strs(p *[]string) opt {
	return nargs(1, -1, "", func(_ *caddyfile.Dispenser, args []string) error { *p = append(*p, args...); return nil })
}

// anyStrs appends zero or more arguments to *p.
func anyStrs(p *[]string) opt {
	return nargs(0, -1, "", func(_ *caddyfile.Dispenser, args []string) error { *p = append(*p, args...); return nil })
}

// each parses a repeatable `<name> <id> { … }` into a new element of *s.
func each[T any](s *[]T, parse func(*caddyfile.Dispenser, *T) error) opt {
	return func(d *caddyfile.Dispenser) error {
		var v T
		err := parse(d, &v)
		*s = append(*s, v)
		return err
	}
}

// fresh parses a block into a new *p: a repeated block replaces the earlier.
func fresh[T any](p **T, parse func(*T, *caddyfile.Dispenser) error) opt {
	return func(d *caddyfile.Dispenser) error {
		*p = new(T)
		return parse(*p, d)
	}
}

// putNew adds k to *m (made on first use), unless k is there already.
func putNew[V any](m *map[string]V, k string, v V) bool {
	if _, dup := (*m)[k]; dup {
		return false
	}
	if *m == nil {
		*m = map[string]V{}
	}
	(*m)[k] = v
	return true
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
func onOff(p *bool) opt { return checked(p, onOffMsg, onOffWord("on", "off")) }

// onOffPtr also takes true/yes and false/no; a pointer keeps "not set"
// (the default) apart from an explicit off.
func onOffPtr(p **bool) opt {
	word := onOffWord("on", "off", "true", "false", "yes", "no")
	return checked(p, onOffMsg, func(v string) (*bool, bool) { b, ok := word(v); return &b, ok })
}

const onOffMsg = "%[1]s: want on or off, not %[2]q"

// onOffWord reads words in on/off pairs: words[0] on, words[1] off, ….
func onOffWord(words ...string) func(string) (bool, bool) {
	return func(v string) (bool, bool) {
		i := slices.Index(words, v)
		return i%2 == 0, i >= 0
	}
}

// oneOf sets *p from exactly one argument, one of choices.
func oneOf(p *string, choices ...string) opt {
	last := len(choices) - 1
	want := strings.Join(choices[:last], ", ") + " or " + choices[last]
	return checked(p, "%[1]s: %[2]q: want "+want, func(v string) (string, bool) { return v, slices.Contains(choices, v) })
}

// unbounded is intArg's "no upper bound".
const unbounded = math.MaxInt

// intArg sets *p from one whole number in [lo, hi]. The conversion to T
// wraps as a plain conversion does (max_conns is an int32).
func intArg[T ~int | ~int32 | ~int64](p *T, lo, hi int) opt {
	return arg1(p, func(name, v string) (T, error) {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0:
			return 0, fmt.Errorf("%s: %q is not a whole number", name, v)
		case n < lo && lo == 1 && hi == unbounded:
			return 0, fmt.Errorf("%s %d is not a positive number", name, n)
		case n < lo || n > hi:
			return 0, fmt.Errorf("%s %d must be between %d and %d", name, n, lo, hi)
		}
		return T(n), nil
	})
}

// dur sets *p from one duration (caddy.ParseDuration: 1h, 30s, 7d). It is
// generic so that it serves every duration type with an int64 underneath.
func dur[T ~int64](p *T) opt { return arg1(p, parseDur[T]) }

// durPtr is dur for a field where an explicit 0 differs from "not set".
func durPtr[T ~int64](p **T) opt {
	return arg1(p, func(name, v string) (*T, error) { x, err := parseDur[T](name, v); return &x, err })
}

// posDur sets *p from one positive duration, at most most (0: no bound).
func posDur[T ~int64](p *T, most time.Duration) opt {
	return arg1(p, func(name, v string) (T, error) {
		x, err := parseDur[T](name, v)
		switch {
		case err != nil:
			return 0, err
		case x <= 0:
			return 0, fmt.Errorf("%s must be positive", name)
		case most > 0 && time.Duration(x) > most:
			return 0, fmt.Errorf("%s %s is longer than %s", name, time.Duration(x), most)
		}
		return x, nil
	})
}

func parseDur[T ~int64](name, v string) (T, error) {
	td, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", name, err)
	}
	return T(td), nil
}

// durOrOff sets *p from a positive duration, or -1 for off.
func durOrOff[T ~int64](p *T) opt {
	return checked(p, "%[1]s %[2]q is not a positive duration or off", func(v string) (T, bool) {
		if v == "off" {
			return -1, true
		}
		td, err := caddy.ParseDuration(v)
		return T(td), err == nil && td > 0
	})
}

// setDur stores a parsed duration in any duration type.
func setDur[T ~int64](p *T, v time.Duration) { *p = T(v) }
