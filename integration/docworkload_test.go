package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
)

// The document workload: DocumentReferences registered for a few patients, and the checks
// that a node's Bleve index answers searches exactly as the replicated state says it
// should (scenarios 6 and 7).

const (
	// docSystemBase is the assigning authority of the document patients.
	docSystemBase = 9_100_000
	// docPatients is how many patients the documents are about: few, so that every
	// search returns many documents.
	docPatients = 4
	docSalt     = 0x444f4353 // "DOCS"
	// masterSystem is the system of the documents' master identifiers.
	masterSystem = "urn:ietf:rfc:3986"
)

var docSystem = fmt.Sprintf("urn:oid:2.16.840.1.113883.3.%d", docSystemBase)

// docTypes are the LOINC types documents get; searches filter by the first.
var docTypes = []string{"11506-3", "18842-5", "34133-9"}

// docState is what the document clients share: the patients they write about.
type docState struct {
	patients []string // system|value
}

// createDocPatients registers the participant and the patients the documents are about.
func (w *Workload) createDocPatients(leader int) {
	c := w.c
	c.t.Helper()
	code, body, _, err := c.call(leader, "POST", "/fhir/Organization", organizationBody("docs", docSystemBase, ""))
	if err != nil || code != 201 {
		c.t.Fatalf("create the documents' participant: %d %s %v", code, body, err)
	}
	w.docs = &docState{}
	for k := 0; k < docPatients; k++ {
		value := fmt.Sprintf("DOC-%d", k)
		code, body, _, err := c.call(leader, "POST", "/fhir/Patient", patientBody(k, docSalt, docSystem, value))
		if err != nil || code != 201 {
			c.t.Fatalf("register document patient %s: %d %s %v", value, code, body, err)
		}
		w.docs.patients = append(w.docs.patients, docSystem+"|"+value)
	}
}

// documentID is the id rls gives a DocumentReference: derived from its master identifier
// (fhir.DocumentID in locator/fhir; the API documents the rule), so that a document of unknown outcome
// can be read back by id.
func documentID(master string) string {
	sum := sha256.Sum256([]byte(masterSystem + "|" + master))
	return "d" + hex.EncodeToString(sum[:16])
}

// registerDocument registers one new document for a random document patient.
func (w *Workload) registerDocument(client, target int, rng *rand.Rand) {
	n := w.nextID.Add(1)
	patient := w.docs.patients[rng.IntN(len(w.docs.patients))]
	sys, val, _ := strings.Cut(patient, "|")
	master := fmt.Sprintf("urn:oid:1.2.840.99.9.%d", n)
	doc := map[string]any{
		"resourceType":     "DocumentReference",
		"masterIdentifier": map[string]any{"system": masterSystem, "value": master},
		"status":           "current",
		"type":             map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": docTypes[rng.IntN(len(docTypes))]}}},
		"subject":          map[string]any{"identifier": map[string]any{"system": sys, "value": val}},
		"date":             fmt.Sprintf("2024-%02d-%02dT%02d:00:00Z", 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24)),
		"description":      fmt.Sprintf("chaos document %d", n),
		"content":          []any{map[string]any{"attachment": map[string]any{"url": fmt.Sprintf("https://docs.example/%d", n), "contentType": "application/pdf"}}},
	}
	w.Write(client, target, opDocument, patient, master, "POST", "/fhir/DocumentReference", doc)
}

// docPage is the page size of document searches: small, so that answers span several
// pages and the cursor is exercised too.
const docPage = "50"

// docQueries are the searches whose answers nodes must agree on: per patient, all its
// documents, those of one type, those from a date on, the count alone, and the locate
// summary.
func docQueries(patients []string) []string {
	var out []string
	for _, p := range patients {
		base := allDocsQuery(p)
		out = append(out, base, base+"&type="+url.QueryEscape("http://loinc.org|"+docTypes[0]), base+"&date=ge2024-07-01",
			"/fhir/DocumentReference?_summary=count&patient.identifier="+url.QueryEscape(p),
			"/v1/locate?identifier="+url.QueryEscape(p))
	}
	return out
}

// allDocsQuery is the query of docQueries listing every document of patient.
func allDocsQuery(patient string) string {
	return "/fhir/DocumentReference?_count=" + docPage + "&patient.identifier=" + url.QueryEscape(patient)
}

// docAnswer runs one query of docQueries on node i at the given consistency and returns
// its answer in a canonical form: the total and the sorted master identifiers of every
// page, or the locate summary.
func (c *Cluster) docAnswer(i int, query, consistency string) (string, error) {
	path := query + "&consistency=" + consistency
	if strings.HasPrefix(query, "/v1/locate") {
		var res struct {
			Locations []struct {
				Participant struct {
					ID string `json:"id"`
				} `json:"participant"`
				DocumentCount  int      `json:"document_count"`
				NewestDocument string   `json:"newest_document"`
				DocumentTypes  []string `json:"document_types"`
			} `json:"locations"`
		}
		if err := c.getJSON(i, path, 20*time.Second, &res); err != nil {
			return "", err
		}
		var parts []string
		for _, l := range res.Locations {
			slices.Sort(l.DocumentTypes)
			parts = append(parts, fmt.Sprintf("%s:%d:%s:%v", l.Participant.ID, l.DocumentCount, l.NewestDocument, l.DocumentTypes))
		}
		slices.Sort(parts)
		return strings.Join(parts, " "), nil
	}
	var masters []string
	total := -1
	for pages := 0; path != ""; pages++ {
		if pages > 1000 {
			return "", fmt.Errorf("%s: more than 1000 pages", query)
		}
		var b struct {
			Total int `json:"total"`
			Entry []struct {
				Resource struct {
					MasterIdentifier struct {
						Value string `json:"value"`
					} `json:"masterIdentifier"`
				} `json:"resource"`
			} `json:"entry"`
			Link []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			} `json:"link"`
		}
		if err := c.getJSON(i, path, 20*time.Second, &b); err != nil {
			return "", err
		}
		if total < 0 {
			total = b.Total
		}
		for _, e := range b.Entry {
			masters = append(masters, e.Resource.MasterIdentifier.Value)
		}
		path = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				path = l.URL
			}
		}
	}
	slices.Sort(masters)
	return fmt.Sprintf("total=%d %s", total, strings.Join(masters, ",")), nil
}

// docAnswers runs every query on node i.
func (c *Cluster) docAnswers(i int, queries []string, consistency string) (map[string]string, error) {
	out := map[string]string{}
	for _, q := range queries {
		a, err := c.docAnswer(i, q, consistency)
		if err != nil {
			return nil, err
		}
		out[q] = a
	}
	return out, nil
}

// mastersOf reads the master identifiers back out of an answer of allDocsQuery.
func mastersOf(answer string) map[string]bool {
	out := map[string]bool{}
	_, list, _ := strings.Cut(answer, " ")
	for _, m := range strings.Split(list, ",") {
		if m != "" {
			out[m] = true
		}
	}
	return out
}

// docsByOutcome lists the recorded document registrations per patient and outcome.
func docsByOutcome(h *History) map[outcome]map[string][]string {
	out := map[outcome]map[string][]string{acked: {}, notApplied: {}, unknown: {}}
	for _, op := range h.Ops() {
		if op.Kind == opDocument {
			out[op.Outcome][op.Key] = append(out[op.Outcome][op.Key], op.Value)
		}
	}
	return out
}

// CheckDocumentsAgree is the search rule of scenario 6: the leader's index, read with
// consistency=strong (which waits for the index to reach the state), holds every
// acknowledged document and no refused one; and every live node, read with
// consistency=stale, comes to answer every query of docQueries exactly as the leader does
// within timeout (its index catches up in the background; the workload has stopped) and
// still does when asked again.
func (c *Cluster) CheckDocumentsAgree(w *Workload, timeout time.Duration) {
	c.t.Helper()
	leader := c.WaitLeader(30 * time.Second)
	queries := docQueries(w.docs.patients)
	want, err := c.docAnswers(leader, queries, "strong")
	if err != nil {
		c.t.Fatalf("document searches on the leader %s: %v", c.Nodes[leader].ID, err)
	}
	byOutcome := docsByOutcome(w.History)
	total := 0
	for _, p := range w.docs.patients {
		have := mastersOf(want[allDocsQuery(p)])
		total += len(have)
		for _, m := range byOutcome[acked][p] {
			if !have[m] {
				c.t.Errorf("the leader %s does not find acknowledged document %s of %s", c.Nodes[leader].ID, m, p)
			}
		}
		for _, m := range byOutcome[notApplied][p] {
			if have[m] {
				c.t.Errorf("the leader %s finds document %s of %s, which was answered as not applied", c.Nodes[leader].ID, m, p)
			}
		}
	}
	agreed := 0
	for _, i := range c.Live() {
		var got map[string]string
		err := testkit.Poll(timeout, pollInterval, func() bool {
			got, err = c.docAnswers(i, queries, "stale")
			return err == nil && equalAnswers(got, want)
		})
		if err != nil {
			c.t.Errorf("%s does not answer the document searches as the leader %s does within %s", c.Nodes[i].ID, c.Nodes[leader].ID, timeout)
			c.reportAnswerDiff(i, got, want)
			continue
		}
		if again, err := c.docAnswers(i, queries, "stale"); err != nil || !equalAnswers(again, want) {
			c.t.Errorf("%s answered the document searches as the leader does, then differently (%v)", c.Nodes[i].ID, err)
			c.reportAnswerDiff(i, again, want)
			continue
		}
		agreed++
	}
	c.t.Logf("%d document searches (%d documents): %d of %d live nodes answer them as the leader does", len(queries), total, agreed, len(c.Live()))
}

func equalAnswers(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// reportAnswerDiff shows up to three queries node i answered (got) otherwise than want.
func (c *Cluster) reportAnswerDiff(i int, got, want map[string]string) {
	shown := 0
	for q, w := range want {
		if got[q] != w && shown < 3 {
			c.t.Errorf("  %s on %s: %.300s\n  the leader: %.300s", q, c.Nodes[i].ID, got[q], w)
			shown++
		}
	}
}
