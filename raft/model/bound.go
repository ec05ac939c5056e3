package model

import (
	"strings"
	"unicode/utf8"
)

// BoundText makes a value taken from a request fit to log or to audit: valid UTF-8,
// characters rls does not store replaced by U+FFFD, at most max characters (cut with "…").
// What it returns passes CheckText with the same max, so a value it bounded never makes the
// FSM refuse the command carrying it.
func BoundText(s string, max int) string {
	return bound(s, max, false)
}

// BoundFreeText is BoundText keeping tabs and line breaks (it passes CheckFreeText).
func BoundFreeText(s string, max int) string {
	return bound(s, max, true)
}

func bound(s string, max int, multiline bool) string {
	clean := true
	n := 0
	for _, r := range s {
		n++
		if r == utf8.RuneError || forbiddenRune(r, multiline) {
			clean = false
			break
		}
	}
	if clean && n <= max && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	total := utf8.RuneCountInString(s)
	n = 0
	for _, r := range s {
		if n == max-1 && total > max {
			b.WriteRune('…')
			break
		}
		if r == utf8.RuneError || forbiddenRune(r, multiline) {
			r = '\uFFFD'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
