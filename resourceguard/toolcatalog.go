package resourceguard

import (
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// The tools the upstream lists (issue 16, tool-snapshot consent): when the
// guard filters a tools/list result it already walks every tool, so it can
// also hand the tools' names, titles and descriptions to the consent page
// (Config.ToolsListed), which then describes each tool a scope unlocks in
// the upstream's own words. It does so at most once per ToolsListedEvery,
// so that a busy endpoint pays for it once a minute, not on every list.
// Everything is bounded: the number of tools and the length of each field.
// The texts are the upstream's, not the user's: the consent page escapes
// them (html/template) and they never decide what a scope unlocks (the
// operator's method scopes do).

// ListedTool is one tool of an upstream tools/list result.
type ListedTool struct {
	Name        string
	Title       string
	Description string
}

// Bounds of what ToolsListed receives.
const (
	maxListedTools     = 256
	maxListedName      = 128 // bytes; a longer name is skipped
	maxListedTitle     = 120 // runes; longer is cut, with an ellipsis
	maxListedDesc      = 300 // runes
	defaultListedEvery = time.Minute
)

// toolCatalog rate-limits the hand-off of listed tools.
type toolCatalog struct {
	fn    func([]ListedTool)
	every time.Duration
	next  atomic.Int64 // unix nanoseconds before which no list is collected
}

// arm reports whether this tools/list result should be collected: the first
// caller after the interval wins, the others go on without collecting.
func (c *toolCatalog) arm(now time.Time) bool {
	if c == nil || c.fn == nil {
		return false
	}
	next := c.next.Load()
	if now.UnixNano() < next {
		return false
	}
	return c.next.CompareAndSwap(next, now.Add(c.every).UnixNano())
}

// collect records one tool object's fields; raw values are JSON strings
// (nil when absent or not a string).
func (f *toolFilter) collect(name, title, desc []byte) {
	if len(f.listed) >= maxListedTools || name == nil {
		return
	}
	n := stringAt(name)
	if n == "" || len(n) > maxListedName || !utf8.ValidString(n) {
		return
	}
	t := ListedTool{Name: n}
	if title != nil {
		t.Title = cutRunes(stringAt(title), maxListedTitle)
	}
	if desc != nil {
		t.Description = cutRunes(stringAt(desc), maxListedDesc)
	}
	f.listed = append(f.listed, t)
}

// cutRunes shortens s to at most n runes, marking a cut with an ellipsis.
func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}
