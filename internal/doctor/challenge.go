package doctor

import "strings"

// ParseChallenge finds the challenge of the given scheme in WWW-Authenticate
// values (RFC 9110 §11.6.1: several challenges may share one header value,
// separated by commas) and returns its auth-params, lower-cased names. It
// accepts quoted-string values with backslash escapes and token values; the
// token68 form is ignored. It never panics on malformed input.
func ParseChallenge(values []string, scheme string) (map[string]string, bool) {
	for _, v := range values {
		if params, ok := parseOne(v, scheme); ok {
			return params, true
		}
	}
	return nil, false
}

func parseOne(s, scheme string) (map[string]string, bool) {
	var params map[string]string
	in := false // inside the wanted challenge
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		start := i
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		name := s[start:i]
		if name == "" {
			if i < len(s) {
				i++ // skip a stray character
			}
			continue
		}
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j < len(s) && s[j] == '=' {
			// An auth-param of the current challenge.
			j++
			for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
				j++
			}
			var val string
			if j < len(s) && s[j] == '"' {
				var b strings.Builder
				j++
				for j < len(s) && s[j] != '"' {
					if s[j] == '\\' && j+1 < len(s) {
						j++
					}
					b.WriteByte(s[j])
					j++
				}
				if j < len(s) {
					j++ // closing quote
				}
				val = b.String()
			} else {
				k := j
				for j < len(s) && isTokenChar(s[j]) {
					j++
				}
				val = s[k:j]
			}
			i = j
			if in {
				key := strings.ToLower(name)
				if _, dup := params[key]; !dup {
					params[key] = val
				}
			}
			continue
		}
		// A new challenge's scheme.
		if in {
			return params, true
		}
		if strings.EqualFold(name, scheme) {
			in = true
			params = map[string]string{}
		}
	}
	return params, in
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
