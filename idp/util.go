package idp

import (
	"html/template"
	"net/url"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// safeIcon admits https, same-origin path and data:image icons only.
func safeIcon(s string) template.URL {
	if s == "" || !validLogo(s) {
		return ""
	}
	return template.URL(s)
}
