package dataset

import (
	"errors"
	"strings"
	"testing"
)

const csvHeader = "rec_id,person_id,facility,mrn,given_name,middle_name,family_name,birth_date,sex,address_line,city,state,postal_code,phone,email,ssn\n"

func TestReadCSV(t *testing.T) {
	in := csvHeader +
		"r1,P1,urn:oid:1,MRN1,Frances,,Williams,1957-04-08,F,3747 Cedar Drive,Salem,OR,97311,2096553558,,\n" +
		"r2,P1,urn:oid:2,MRN9,Fran,Ann,Williams,1957-04-08,F,,Salem,OR,97311,(209) 655-3558,f@x.org,123-45-6780\n"
	f, err := Read(strings.NewReader(in), "t.csv", CSV)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Labelled || len(f.Rows) != 2 {
		t.Fatalf("labelled %v, %d rows", f.Labelled, len(f.Rows))
	}
	r := f.Rows[1]
	if r.Line != 3 || r.Label != "P1" || r.ID != "r2" || r.Record.System != "urn:oid:2" || r.Record.Value != "MRN9" ||
		len(r.Record.Given) != 2 || r.Record.Given[1] != "Ann" || r.Record.AddressLines != nil || r.Record.SSN != "123-45-6780" {
		t.Fatalf("row %+v", r)
	}
}

func TestReadCSVWithoutLabels(t *testing.T) {
	header := strings.Replace(csvHeader, "person_id,", "", 1)
	f, err := Read(strings.NewReader(header+"r1,urn:oid:1,MRN1,Frances,,Williams,1957-04-08,F,,,,,,,\n"), "t.csv", CSV)
	if err != nil {
		t.Fatal(err)
	}
	if f.Labelled || f.Rows[0].Label != "" {
		t.Fatalf("a file without person_id is unlabelled: %+v", f)
	}
}

func TestReadCSVMalformed(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"empty", "", "empty file"},
		{"unknown column", strings.Replace(csvHeader, "ssn", "ssn,extra", 1), `line 1: malformed: unknown column "extra"`},
		{"missing column", strings.Replace(csvHeader, ",email", "", 1), `missing column "email"`},
		{"duplicate column", strings.Replace(csvHeader, "ssn", "ssn,ssn", 1), `column "ssn" appears twice`},
		{"bad date", csvHeader + "r1,P1,f,m,A,,B,1957-13-08,F,,,,,,,\n", `line 2: malformed: birth_date "1957-13-08"`},
		{"no mrn", csvHeader + "r1,P1,f,m,A,,B,1957-01-08,F,,,,,,,\n" + "r2,P1,f,,A,,B,1957-01-08,F,,,,,,,\n", "line 3: malformed: facility and mrn"},
		{"short row", csvHeader + "r1,P1,f,m\n", "line 2: malformed: wrong number of fields"},
		{"empty label", csvHeader + "r1,,f,m,A,,B,,,,,,,,,\n", "line 2: malformed: empty person_id"},
		{"bare quote", csvHeader + "r1,P1,f,m,\"A,,B,,,,,,,,,\n", "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(c.in), "t.csv", CSV)
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "load t.csv") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

const febrlHeader = "rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id\r\n"

func TestReadFEBRL(t *testing.T) {
	in := febrlHeader +
		"rec-1070-org, michaela, neumann, 8, stanley street, miami, winston hills, 4223, nsw, 19151111, 5304218\r\n" +
		"rec-1070-dup-0, michaela, , , stanley street, , winston hills, 4223, nsw, 19960094, 5304218"
	f, err := Read(strings.NewReader(in), "/data/dataset4a.csv", FEBRL)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Labelled || len(f.Rows) != 2 {
		t.Fatalf("%+v", f)
	}
	a, b := f.Rows[0], f.Rows[1]
	if a.Label != "1070" || b.Label != "1070" || a.Record.System != "febrl:dataset4a.csv" || a.Record.Value != "rec-1070-org" {
		t.Fatalf("labels and identifiers: %+v / %+v", a, b)
	}
	if a.Record.BirthDate != "1915-11-11" || b.Record.BirthDate != "1996-00-94" {
		t.Errorf("birth dates %q %q (impossible dates are kept)", a.Record.BirthDate, b.Record.BirthDate)
	}
	if got := a.Record.AddressLines; len(got) != 2 || got[0] != "8 stanley street" || got[1] != "miami" {
		t.Errorf("address lines %q", got)
	}
	if b.Record.Family != "" || b.Line != 3 || len(b.Record.AddressLines) != 1 {
		t.Errorf("second row %+v", b)
	}
}

func TestReadFEBRLMalformed(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"wrong header", "rec_id, given_name\n", "missing column"},
		{"bad date", febrlHeader + "rec-1-org, a, b, 1, x, y, z, 2000, nsw, 1915111, 1\n", `line 2: malformed: date_of_birth "1915111"`},
		{"short row", febrlHeader + "rec-1-org, a, b\n", "line 2: malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Read(strings.NewReader(c.in), "f.csv", FEBRL); err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	f, err := Read(strings.NewReader(febrlHeader+"patient-7, a, b, 1, x, y, z, 2000, nsw, 19151111, 1\n"), "f.csv", FEBRL)
	if err != nil || f.Labelled {
		t.Fatalf("an rec_id without the rec-N pattern makes the file unlabelled: %v %+v", err, f)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": CSV, "csv": CSV, "FEBRL": FEBRL} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("xml accepted")
	}
}

// The parsers read outside input (bulk import), so they are fuzzed: they
// must never panic, and every row they accept must be registrable.
func FuzzReadCSV(f *testing.F) {
	f.Add(csvHeader + "r1,P1,urn:oid:1,MRN1,Frances,,Williams,1957-04-08,F,3747 Cedar Drive,Salem,OR,97311,2096553558,,\n")
	f.Add(strings.Replace(csvHeader, "person_id,", "", 1) + "r1,f,m,\"A \"\"B\"\"\",,C,,,,,,,,,\n")
	f.Add("\ufeff" + csvHeader + "r1,P1,f,m,,,,,,,,,,,,\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		file, err := Read(strings.NewReader(in), "fuzz.csv", CSV)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		for _, r := range file.Rows {
			if err := r.Record.Validate(); err != nil {
				t.Fatalf("accepted a row that cannot be registered: %v", err)
			}
		}
	})
}

func FuzzReadFEBRL(f *testing.F) {
	f.Add(febrlHeader + "rec-1070-org, michaela, neumann, 8, stanley street, miami, winston hills, 4223, nsw, 19151111, 5304218\r\n")
	f.Add(febrlHeader + "rec-1-dup-0, , , , , , , , , , \n")
	f.Fuzz(func(t *testing.T, in string) {
		file, err := Read(strings.NewReader(in), "fuzz.csv", FEBRL)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		for _, r := range file.Rows {
			if err := r.Record.Validate(); err != nil {
				t.Fatalf("accepted a row that cannot be registered: %v", err)
			}
		}
	})
}
