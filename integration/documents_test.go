package integration

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"
)

// TestDocumentsSearchableOnEveryNode registers documents through each of three nodes and
// requires every node to find all of them with consistency=stale once its index caught up,
// and the locate answer to agree on every node.
func TestDocumentsSearchableOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	c := NewCluster(t, Options{Nodes: 3})
	const system = "urn:oid:1.2.840.99.7"
	tok := c.addParticipant("hosp-d", system)
	patient := map[string]any{
		"resourceType": "Patient",
		"identifier":   []any{map[string]any{"system": system, "value": "D-1"}},
		"name":         []any{map[string]any{"family": "Fleming", "given": []string{"Alexander"}}},
		"birthDate":    "1981-08-06",
	}
	if code, body, err := c.callAs(0, tok, "POST", "/fhir/Patient", patient, nil); err != nil || code != 201 {
		t.Fatalf("register patient: %d %s %v", code, body, err)
	}
	const perNode = 5
	for i := range c.Nodes {
		for j := 0; j < perNode; j++ {
			doc := map[string]any{
				"resourceType":     "DocumentReference",
				"masterIdentifier": map[string]any{"system": "urn:ietf:rfc:3986", "value": fmt.Sprintf("urn:oid:1.2.3.%d.%d", i, j)},
				"status":           "current",
				"type":             map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "11506-3"}}},
				"subject":          map[string]any{"identifier": map[string]any{"system": system, "value": "D-1"}},
				"date":             fmt.Sprintf("2024-0%d-1%dT08:00:00Z", 1+i, j),
				"content":          []any{map[string]any{"attachment": map[string]any{"url": fmt.Sprintf("https://docs.example/%d/%d", i, j)}}},
			}
			if code, body, err := c.callAs(i, tok, "POST", "/fhir/DocumentReference", doc, nil); err != nil || code != 201 {
				t.Fatalf("register document through node %d: %d %s %v", i, code, body, err)
			}
		}
	}
	want := perNode * len(c.Nodes)
	query := "/fhir/DocumentReference?consistency=stale&_summary=count&patient.identifier=" + url.QueryEscape(system+"|D-1")
	for i := range c.Nodes {
		c.WaitFor(20*time.Second, fmt.Sprintf("node %d to find all %d documents", i, want), func() bool {
			code, body, err := c.callAs(i, tok, "GET", query, nil, nil)
			if err != nil || code != 200 {
				return false
			}
			var b struct {
				Total int `json:"total"`
			}
			return json.Unmarshal(body, &b) == nil && b.Total == want
		})
		code, body, err := c.callAs(i, tok, "GET", "/v1/locate?consistency=stale&identifier="+url.QueryEscape(system+"|D-1"), nil, nil)
		var res struct {
			Locations []struct {
				DocumentCount  int    `json:"document_count"`
				NewestDocument string `json:"newest_document"`
			} `json:"locations"`
		}
		if err != nil || code != 200 || json.Unmarshal(body, &res) != nil || len(res.Locations) != 1 ||
			res.Locations[0].DocumentCount != want || res.Locations[0].NewestDocument != "2024-03-14" {
			t.Fatalf("locate on node %d: %d %s %v", i, code, body, err)
		}
	}
}
