// Package textclip bounds untrusted text before it is quoted in an error or
// a log line. It is the one helper every side of sealroot shares (guest,
// host and wire packages alike), so it depends on nothing but the standard
// library.
package textclip

import "unicode/utf8"

// Clip bounds text quoted in an error or a log line, typically untrusted
// input: s itself when it is at most n bytes, else its longest prefix of at
// most n bytes that ends on a UTF-8 rune boundary, followed by "…". Callers
// choose n; quoting (%q) is theirs too.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
