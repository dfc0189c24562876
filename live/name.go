package live

import "strings"

// ValidName reports whether name can be a stream's name: one part, or a
// grouped name of two, "{meeting}/{participant}". Each part is 1 to 128
// letters, digits, '.', '_', '~' or '-', starting with a letter or digit,
// so a name never holds "..", an empty part, a leading slash or anything
// a URL, a file name or a log line would have to escape.
func ValidName(name string) bool {
	first, rest, grouped := strings.Cut(name, "/")
	if !validPart(first) {
		return false
	}
	return !grouped || validPart(rest)
}

// validPart matches ^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$.
func validPart(p string) bool {
	if p == "" || len(p) > 128 || !alnum(p[0]) {
		return false
	}
	for i := 1; i < len(p); i++ {
		if c := p[i]; !alnum(c) && c != '.' && c != '_' && c != '~' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
