package search

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on a free-text search, so one request cannot build an arbitrarily
// large query.
const (
	maxTextLength  = 1000
	maxTextClauses = 32
)

// textQuery is a parsed _text value: words that must all occur, phrases that
// must occur as written, and words or phrases that must not occur.
type textQuery struct {
	words    []string
	phrases  []string
	excluded []textClause
}

type textClause struct {
	text   string
	phrase bool
}

// parseText parses the _text syntax, a search-box language: words (all must
// match, after stemming), "quoted phrases", and a leading '-' on a word or
// phrase to exclude it. An unterminated quote runs to the end. Errors wrap
// ErrInvalidQuery.
func parseText(s string) (textQuery, error) {
	var q textQuery
	fail := func(format string, args ...any) (textQuery, error) {
		return textQuery{}, fmt.Errorf("%w: _text: %s", ErrInvalidQuery, fmt.Sprintf(format, args...))
	}
	if len(s) > maxTextLength {
		return fail("%d bytes, longer than %d", len(s), maxTextLength)
	}
	if !utf8.ValidString(s) {
		return fail("not valid UTF-8")
	}
	clauses := 0
	rest := s
	for {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		if rest == "" {
			break
		}
		exclude := false
		if rest[0] == '-' {
			exclude = true
			rest = rest[1:]
		}
		var text string
		phrase := false
		if strings.HasPrefix(rest, `"`) {
			phrase = true
			body := rest[1:]
			end := strings.IndexByte(body, '"')
			if end < 0 {
				text, rest = body, ""
			} else {
				text, rest = body[:end], body[end+1:]
			}
			text = strings.TrimSpace(text)
		} else {
			end := strings.IndexFunc(rest, unicode.IsSpace)
			if end < 0 {
				end = len(rest)
			}
			text, rest = rest[:end], rest[end:]
		}
		if text == "" {
			continue
		}
		clauses++
		if clauses > maxTextClauses {
			return fail("more than %d words or phrases", maxTextClauses)
		}
		switch {
		case exclude:
			q.excluded = append(q.excluded, textClause{text: text, phrase: phrase})
		case phrase:
			q.phrases = append(q.phrases, text)
		default:
			q.words = append(q.words, text)
		}
	}
	if len(q.words) == 0 && len(q.phrases) == 0 {
		return fail("no word or phrase to look for")
	}
	return q, nil
}
