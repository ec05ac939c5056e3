package search

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// TimeRange is the half-open interval [From, To). A zero bound is open.
type TimeRange struct {
	From time.Time
	To   time.Time
}

// DatePrefix is a FHIR search comparator for dates.
type DatePrefix string

// The FHIR date comparators this package evaluates ("ap", approximately, is
// implementation-defined and not supported).
const (
	DateEq DatePrefix = "eq" // the value lies within the range
	DateNe DatePrefix = "ne" // the value does not lie within the range
	DateGt DatePrefix = "gt" // the value extends to or past the range's end
	DateLt DatePrefix = "lt" // the value starts before the range
	DateGe DatePrefix = "ge" // the value extends to or past the range's start
	DateLe DatePrefix = "le" // the value starts before the range's end
	DateSa DatePrefix = "sa" // the value starts at or after the range's end
	DateEb DatePrefix = "eb" // the value ends before the range starts
)

// DateParam is one FHIR date search condition: a comparator and the range
// the searched value implies ("2024-03" is March 2024). It is evaluated
// against a target that is itself a range: an instant for the creation date,
// the service period (open ends unbounded) for the period. Two conditions
// "ge" and "le" on the same range select targets that overlap it (see
// [Overlapping]).
type DateParam struct {
	Prefix DatePrefix
	Range  TimeRange
}

// Overlapping is the pair of conditions that selects targets overlapping r.
func Overlapping(r TimeRange) []DateParam {
	var out []DateParam
	if !r.From.IsZero() {
		out = append(out, DateParam{Prefix: DateGe, Range: TimeRange{From: r.From}})
	}
	if !r.To.IsZero() {
		out = append(out, DateParam{Prefix: DateLe, Range: TimeRange{To: r.To}})
	}
	return out
}

// fhirDate matches the FHIR search date syntax: a year, optionally month,
// day, and a time to the minute, second or fraction, with an optional zone.
var fhirDate = regexp.MustCompile(`^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$`)

// ParseDateParam parses a FHIR date search value such as "ge2024-03",
// "2024-03-15" or "lt2024-03-15T10:00:00+01:00" into its comparator (eq when
// none is given) and the range its precision implies. Values without a zone
// are taken as UTC. Errors wrap ErrInvalidQuery.
func ParseDateParam(s string) (DateParam, error) {
	fail := func(format string, args ...any) (DateParam, error) {
		return DateParam{}, fmt.Errorf("%w: date %q: %s", ErrInvalidQuery, s, fmt.Sprintf(format, args...))
	}
	value := s
	prefix := DateEq
	if len(s) >= 2 && s[0] >= 'a' && s[0] <= 'z' {
		prefix, value = DatePrefix(s[:2]), s[2:]
		switch prefix {
		case DateEq, DateNe, DateGt, DateLt, DateGe, DateLe, DateSa, DateEb:
		case "ap":
			return fail("the ap prefix is not supported")
		default:
			return fail("unknown prefix %q", s[:2])
		}
	}
	m := fhirDate.FindStringSubmatch(value)
	if m == nil {
		return fail("not YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm]")
	}
	num := func(i int) int {
		if m[i] == "" {
			return 0
		}
		n, _ := strconv.Atoi(m[i]) // the pattern admits only digits
		return n
	}
	year, month, day, hour, minute, second := num(1), num(2), num(3), num(4), num(5), num(6)
	if m[2] != "" && (month < 1 || month > 12) {
		return fail("month %d", month)
	}
	if hour > 23 || minute > 59 || second > 59 {
		return fail("time %02d:%02d:%02d", hour, minute, second)
	}
	loc := time.UTC
	if zone := m[8]; zone != "" && zone != "Z" {
		zh, _ := strconv.Atoi(zone[1:3])
		zm, _ := strconv.Atoi(zone[4:6])
		if zh > 14 || zm > 59 {
			return fail("zone %s", zone)
		}
		offset := zh*3600 + zm*60
		if zone[0] == '-' {
			offset = -offset
		}
		loc = time.FixedZone(zone, offset)
	}
	nanos := 0
	if frac := m[7]; frac != "" {
		n, _ := strconv.Atoi(frac)
		nanos = n * int(math.Pow10(9-len(frac)))
	}
	if m[2] == "" {
		month = 1
	}
	if m[3] == "" {
		day = 1
	}
	from := time.Date(year, time.Month(month), day, hour, minute, second, nanos, loc)
	if from.Day() != day {
		return fail("day %d does not exist in %04d-%02d", day, year, month)
	}
	var to time.Time
	switch {
	case m[2] == "":
		to = from.AddDate(1, 0, 0)
	case m[3] == "":
		to = from.AddDate(0, 1, 0)
	case m[4] == "":
		to = from.AddDate(0, 0, 1)
	case m[6] == "":
		to = from.Add(time.Minute)
	case m[7] == "":
		to = from.Add(time.Second)
	default:
		to = from.Add(time.Duration(math.Pow10(9 - len(m[7]))))
	}
	return DateParam{Prefix: prefix, Range: TimeRange{From: from.UTC(), To: to.UTC()}}, nil
}

// String renders the condition for messages and tests.
func (p DateParam) String() string {
	var b strings.Builder
	b.WriteString(string(p.Prefix))
	b.WriteString("[")
	if !p.Range.From.IsZero() {
		b.WriteString(p.Range.From.Format(time.RFC3339Nano))
	}
	b.WriteString(",")
	if !p.Range.To.IsZero() {
		b.WriteString(p.Range.To.Format(time.RFC3339Nano))
	}
	b.WriteString(")")
	return b.String()
}
