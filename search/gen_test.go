package search

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// corpusGen makes a synthetic registry: persons with one to three records
// at different participants, and documents spread over them with a skew (a
// minority of persons with chronic conditions hold many documents), with
// realistic code sets, dates and text. It is deterministic for a seed and
// keeps nothing on disk.
type corpusGen struct {
	rng        *rand.Rand
	persons    int
	holders    int
	types      []Code
	typeZipf   *rand.Zipf
	categories []Code
	formats    []Code
	facilities []Code
	settings   []Code
	events     []Code
	given      []string
	family     []string
	vocabulary []string
	wordZipf   *rand.Zipf
	chronic    int // persons 0..chronic-1 get a larger share of documents
}

// clinicalWords seed the vocabulary so free-text queries look like real
// ones; the rest of the vocabulary is generated.
var clinicalWords = strings.Fields(`patient presents with chest pain shortness breath fracture
left right arm leg hip knee diabetes mellitus type hypertension heart failure ejection fraction
reduced preserved chronic kidney disease stage asthma exacerbation pneumonia infection fever cough
follow visit routine annual physical examination laboratory results normal abnormal elevated
glucose cholesterol lipid panel hemoglobin imaging xray mri ct scan ultrasound findings impression
discharge summary admission history medication reconciliation allergy penicillin surgery
postoperative wound healing therapy physical occupational counseling depression anxiety screening
vaccination influenza pregnancy prenatal pediatric growth development migraine headache back
pain lumbar cervical spine stroke transient ischemic attack atrial fibrillation anticoagulation`)

var syllables = strings.Fields("ka lo mi re su ta ne vo pi da ra fe lu zo be si ko ma ti no")

func newCorpusGen(seed uint64, persons, holders int) *corpusGen {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &corpusGen{rng: rng, persons: persons, holders: holders, chronic: max(1, persons/100)}
	codes := func(system, prefix string, n int) []Code {
		out := make([]Code, n)
		for i := range out {
			out[i] = Code{System: system, Code: fmt.Sprintf("%s%d", prefix, 1000+i), Display: fmt.Sprintf("%s %d", prefix, i)}
		}
		return out
	}
	g.types = codes(loinc, "T", 60)
	g.typeZipf = rand.NewZipf(rng, 1.2, 2, uint64(len(g.types)-1))
	g.categories = codes(classCodes, "C", 8)
	g.formats = codes(formatCodes, "F", 10)
	g.facilities = codes(facilities, "FAC", 15)
	g.settings = codes(facilities, "SET", 40)
	g.events = codes(facilities, "EV", 80)
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(syllables[rng.IntN(len(syllables))])
		}
		return b.String()
	}
	for range 300 {
		g.given = append(g.given, strings.ToUpper(word(1)[:1])+word(2))
	}
	for range 1000 {
		g.family = append(g.family, strings.ToUpper(word(1)[:1])+word(3))
	}
	g.vocabulary = append(g.vocabulary, clinicalWords...)
	for len(g.vocabulary) < 5000 {
		g.vocabulary = append(g.vocabulary, word(2+rng.IntN(3)))
	}
	// Shuffle so the Zipf head mixes clinical and generated words.
	rng.Shuffle(len(g.vocabulary), func(i, j int) { g.vocabulary[i], g.vocabulary[j] = g.vocabulary[j], g.vocabulary[i] })
	g.wordZipf = rand.NewZipf(rng, 1.1, 3, uint64(len(g.vocabulary)-1))
	return g
}

func (g *corpusGen) euid(person int) string { return fmt.Sprintf("E%08d", person) }

// recordsOf returns the person's record keys and their holders: one to three
// records, at distinct participants, fixed by the person number alone.
func (g *corpusGen) recordsOf(person int) (keys, holders []string) {
	h := uint64(person)*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019
	n := 1 + int(h%7)/3 // 1, 1, 1, 2, 2, 2, 3: mostly one or two
	for i := range n {
		holder := int((h >> (8 * (i + 1))) % uint64(g.holders))
		for j := range holders {
			if holders[j] == g.holderID(holder) {
				holder = (holder + 1 + i) % g.holders
			}
		}
		keys = append(keys, fmt.Sprintf("urn:oid:2.16.840.1.113883.3.%d|MRN%09d", holder, person))
		holders = append(holders, g.holderID(holder))
	}
	return keys, holders
}

func (g *corpusGen) holderID(n int) string { return fmt.Sprintf("p%03d", n) }

// pickPerson skews documents: a third go to the chronic 1% of persons.
func (g *corpusGen) pickPerson() int {
	if g.rng.IntN(3) == 0 {
		return g.rng.IntN(g.chronic)
	}
	return g.rng.IntN(g.persons)
}

var corpusEpoch = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)

func (g *corpusGen) text(minWords, maxWords int) string {
	n := minWords + g.rng.IntN(maxWords-minWords+1)
	words := make([]string, n)
	for i := range words {
		words[i] = g.vocabulary[g.wordZipf.Uint64()]
	}
	return strings.Join(words, " ")
}

// doc generates document number i.
func (g *corpusGen) doc(i int) Document {
	rng := g.rng
	person := g.pickPerson()
	keys, holders := g.recordsOf(person)
	r := rng.IntN(len(keys))
	typ := g.types[g.typeZipf.Uint64()]
	created := corpusEpoch.Add(time.Duration(rng.Int64N(int64(16 * 365 * 24 * time.Hour)))).Truncate(time.Second)
	id := fmt.Sprintf("doc%08d", i)
	d := Document{
		ID:               id,
		MasterIdentifier: Identifier{System: "urn:ietf:rfc:3986", Value: fmt.Sprintf("urn:oid:1.2.840.99.%d", i)},
		Status:           StatusCurrent,
		PatientRecord:    keys[r],
		PersonEUID:       g.euid(person),
		Type:             typ,
		Category:         []Code{g.categories[rng.IntN(len(g.categories))]},
		Format:           g.formats[rng.IntN(len(g.formats))],
		FacilityType:     g.facilities[rng.IntN(len(g.facilities))],
		PracticeSetting:  g.settings[rng.IntN(len(g.settings))],
		Created:          created,
		Authors: []Author{{
			Given:       []string{g.given[rng.IntN(len(g.given))]},
			Family:      g.family[rng.IntN(len(g.family))],
			Institution: "Institution " + holders[r],
		}},
		Title:        typ.Display + " " + g.text(1, 3),
		Description:  g.text(8, 20),
		MIMEType:     "application/pdf",
		Size:         int64(1000 + rng.IntN(1_000_000)),
		Hash:         "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
		Language:     "en",
		Holder:       holders[r],
		RepositoryID: "1.2.840.99." + holders[r],
		URL:          "https://" + holders[r] + ".example/fhir/Binary/" + id,
	}
	switch p := rng.IntN(100); {
	case p < 8:
		d.Status = StatusSuperseded
	case p < 10:
		d.Status = StatusEnteredInError
	}
	for range rng.IntN(3) {
		d.Events = append(d.Events, g.events[rng.IntN(len(g.events))])
	}
	conf := "N"
	switch p := rng.IntN(100); {
	case p < 3:
		conf = "V"
	case p < 15:
		conf = "R"
	}
	d.SecurityLabels = []Code{{System: confCodes, Code: conf}}
	if rng.IntN(20) == 0 {
		labels := []string{"HIV", "PSY", "ETH", "SDV"}
		d.SecurityLabels = append(d.SecurityLabels, Code{System: actCodes, Code: labels[rng.IntN(len(labels))]})
	}
	if rng.IntN(10) < 6 {
		start := created.Add(-time.Duration(rng.IntN(30*24)) * time.Hour)
		d.ServicePeriod = Period{Start: start}
		if rng.IntN(10) > 0 {
			d.ServicePeriod.End = start.Add(time.Duration(rng.IntN(10*24)) * time.Hour)
		}
	}
	return d
}
