// Package dataset reads files of patient records into mpi.Records: the
// "csv" format of rls bulk import and evaluation, and the "febrl" format of
// the FEBRL synthetic test files. Each record keeps its file line, and the
// truth label when the file has one (used only for evaluation).
//
// It owns file formats only: it must never import HTTP or Raft code, and it
// does no matching.
package dataset

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/rls-hie/rls/mpi"
)

// Format names a file format.
type Format string

const (
	// CSV is the rls format: a header naming the columns of CSVColumns
	// (person_id, the truth label, is optional), one record per row,
	// birth_date YYYY-MM-DD, facility the identifier system and mrn its value.
	CSV Format = "csv"
	// FEBRL is the format of the FEBRL files: ", "-separated columns
	// rec_id, given_name, surname, street_number, address_1, address_2,
	// suburb, postcode, state, date_of_birth (YYYYMMDD), soc_sec_id; the
	// truth label is N of rec_id "rec-N-org" or "rec-N-dup-K".
	FEBRL Format = "febrl"
)

// ParseFormat accepts "csv" (or "") and "febrl".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "csv":
		return CSV, nil
	case "febrl":
		return FEBRL, nil
	}
	return "", fmt.Errorf("%w: unknown format %q (want csv or febrl)", ErrMalformed, s)
}

// CSVColumns is the header of the csv format, in its documented order.
var CSVColumns = []string{"rec_id", "person_id", "facility", "mrn", "given_name", "middle_name",
	"family_name", "birth_date", "sex", "address_line", "city", "state", "postal_code", "phone", "email", "ssn"}

// LabelColumn is the csv column holding the truth label.
const LabelColumn = "person_id"

var febrlColumns = []string{"rec_id", "given_name", "surname", "street_number", "address_1",
	"address_2", "suburb", "postcode", "state", "date_of_birth", "soc_sec_id"}

// ErrMalformed is returned (wrapped, with file and line) for a file or row
// that does not follow its format.
var ErrMalformed = errors.New("malformed")

// Row is one record read from a file.
type Row struct {
	Record mpi.Record
	// ID is the row's own identifier (rec_id).
	ID string
	// Label is the truth: rows with the same label are the same person. It
	// is empty when the file has no label column.
	Label string
	File  string
	Line  int
}

// File is the content of one file.
type File struct {
	Name string
	Rows []Row
	// Labelled is true when every row carries a truth label.
	Labelled bool
	// Rejected lists the malformed rows skipped by LoadLenient (Load fails on the first).
	Rejected []RowError
}

// RowError is a malformed row that LoadLenient skipped.
type RowError struct {
	Line int
	Err  error
}

// Load reads a file in the given format.
func Load(path string, format Format) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("load %s: %w", path, err)
	}
	defer f.Close()
	return Read(f, path, format)
}

// LoadLenient reads a file like Load but skips malformed rows, listing them in
// File.Rejected with their line numbers (bulk import reports them and goes on). A file
// whose header or structure is wrong still fails.
func LoadLenient(path string, format Format) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("load %s: %w", path, err)
	}
	defer f.Close()
	return read(f, path, format, true)
}

// Read parses r, named name in errors and in the FEBRL identifier system.
func Read(r io.Reader, name string, format Format) (File, error) {
	return read(r, name, format, false)
}

func read(r io.Reader, name string, format Format, lenient bool) (File, error) {
	switch format {
	case CSV, "":
		return readCSV(r, name, lenient)
	case FEBRL:
		return readFEBRL(r, name, lenient)
	}
	return File{}, fmt.Errorf("load %s: %w: unknown format %q", name, ErrMalformed, format)
}

// reject fails on a malformed row, or (lenient) notes it and lets the caller skip it.
func (f *File) reject(lenient bool, line int, err error) error {
	if !lenient {
		return err
	}
	f.Rejected = append(f.Rejected, RowError{Line: line, Err: err})
	return nil
}

func newReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	return cr
}

// header reads and checks the header row: every wanted column once, no
// others; optional columns may be absent. It returns each column's index.
func header(cr *csv.Reader, name string, want []string, optional string) (map[string]int, error) {
	h, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("load %s: %w: empty file, want a header", name, ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w: %v", name, ErrMalformed, err)
	}
	idx := map[string]int{}
	for i, col := range h {
		col = strings.TrimSpace(col)
		if i == 0 {
			col = strings.TrimPrefix(col, "\ufeff")
		}
		if _, dup := idx[col]; dup {
			return nil, fmt.Errorf("load %s line 1: %w: column %q appears twice", name, ErrMalformed, col)
		}
		idx[col] = i
	}
	for _, col := range h {
		col = strings.TrimPrefix(strings.TrimSpace(col), "\ufeff")
		known := false
		for _, w := range want {
			known = known || w == col
		}
		if !known {
			return nil, fmt.Errorf("load %s line 1: %w: unknown column %q (want %s)", name, ErrMalformed, col, strings.Join(want, ","))
		}
	}
	for _, w := range want {
		if _, ok := idx[w]; !ok && w != optional {
			return nil, fmt.Errorf("load %s line 1: %w: missing column %q (want %s)", name, ErrMalformed, w, strings.Join(want, ","))
		}
	}
	cr.FieldsPerRecord = len(h)
	return idx, nil
}

func rowError(name string, line int, format string, args ...any) error {
	return fmt.Errorf("load %s line %d: %w: %s", name, line, ErrMalformed, fmt.Sprintf(format, args...))
}

// readErr turns a csv parse error into one naming the file and line.
func readErr(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("load %s line %d: %w: %v", name, pe.Line, ErrMalformed, pe.Err)
	}
	return fmt.Errorf("load %s: %w", name, err)
}

func readCSV(r io.Reader, name string, lenient bool) (File, error) {
	cr := newReader(r)
	idx, err := header(cr, name, CSVColumns, LabelColumn)
	if err != nil {
		return File{}, err
	}
	_, labelled := idx[LabelColumn]
	out := File{Name: name, Labelled: labelled}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return File{}, readErr(name, err)
		}
		line, _ := cr.FieldPos(0)
		get := func(col string) string {
			if i, ok := idx[col]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		row := Row{ID: get("rec_id"), File: name, Line: line, Label: get(LabelColumn)}
		if labelled && row.Label == "" {
			if err := out.reject(lenient, line, rowError(name, line, "empty %s", LabelColumn)); err != nil {
				return File{}, err
			}
			continue
		}
		mr := mpi.Record{
			System: get("facility"), Value: get("mrn"), Family: get("family_name"),
			Sex: get("sex"), City: get("city"), State: get("state"), PostalCode: get("postal_code"),
			Email: get("email"), SSN: get("ssn"),
		}
		if g, m := get("given_name"), get("middle_name"); g != "" || m != "" {
			mr.Given = []string{g}
			if m != "" {
				mr.Given = append(mr.Given, m)
			}
		}
		if a := get("address_line"); a != "" {
			mr.AddressLines = []string{a}
		}
		if p := get("phone"); p != "" {
			mr.Phones = []string{p}
		}
		if b := get("birth_date"); b != "" {
			if _, err := time.Parse("2006-01-02", b); err != nil {
				if err := out.reject(lenient, line, rowError(name, line, "birth_date %q is not a YYYY-MM-DD date", b)); err != nil {
					return File{}, err
				}
				continue
			}
			mr.BirthDate = b
		}
		if err := mr.Validate(); err != nil {
			if err := out.reject(lenient, line, rowError(name, line, "facility and mrn: %v", err)); err != nil {
				return File{}, err
			}
			continue
		}
		row.Record = mr
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

var febrlID = regexp.MustCompile(`^rec-(\d+)-(org|dup-\d+)$`)

func readFEBRL(r io.Reader, name string, lenient bool) (File, error) {
	cr := newReader(r)
	cr.TrimLeadingSpace = true // FEBRL separates fields with ", "
	idx, err := header(cr, name, febrlColumns, "")
	if err != nil {
		return File{}, err
	}
	system := "febrl:" + filepath.Base(name)
	out := File{Name: name, Labelled: true}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return File{}, readErr(name, err)
		}
		line, _ := cr.FieldPos(0)
		get := func(col string) string { return strings.TrimSpace(rec[idx[col]]) }
		row := Row{ID: get("rec_id"), File: name, Line: line}
		if m := febrlID.FindStringSubmatch(row.ID); m != nil {
			row.Label = m[1]
		} else {
			out.Labelled = false
		}
		mr := mpi.Record{System: system, Value: row.ID, Family: get("surname"),
			City: get("suburb"), State: get("state"), PostalCode: get("postcode"), SSN: get("soc_sec_id")}
		if g := get("given_name"); g != "" {
			mr.Given = []string{g}
		}
		if l := strings.TrimSpace(get("street_number") + " " + get("address_1")); l != "" {
			mr.AddressLines = append(mr.AddressLines, l)
		}
		if l := get("address_2"); l != "" {
			mr.AddressLines = append(mr.AddressLines, l)
		}
		if b := get("date_of_birth"); b != "" {
			// FEBRL keeps impossible dates (month 00, day 94) as the
			// generator's typing errors; their digits still compare.
			if len(b) != 8 || strings.Trim(b, "0123456789") != "" {
				if err := out.reject(lenient, line, rowError(name, line, "date_of_birth %q is not YYYYMMDD", b)); err != nil {
					return File{}, err
				}
				continue
			}
			mr.BirthDate = b[:4] + "-" + b[4:6] + "-" + b[6:]
		}
		if err := mr.Validate(); err != nil {
			if err := out.reject(lenient, line, rowError(name, line, "rec_id: %v", err)); err != nil {
				return File{}, err
			}
			continue
		}
		row.Record = mr
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}
