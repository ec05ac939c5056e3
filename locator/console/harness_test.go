package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/locator/console"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi/synth"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/rafttest"
)

const adminToken = "rls_console_test_admin_token"

// node is one dev node (a bootstrapped single-node cluster) serving the API and the
// console on loopback, as `rls agent -dev` does.
type node struct {
	t   testing.TB
	url string
}

// startNode starts the node on dataDir (a new temporary one if empty).
func startNode(t testing.TB, dataDir string) *node {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	rn := rafttest.Start(t, rafttest.Options{DataDir: dataDir, HTTPAddr: "http://" + srv.Listener.Addr().String(), AdminTokenHash: locator.TokenHash(adminToken)})
	api := locator.New(locator.Options{Node: rn.Node, TempDir: t.TempDir(), AddressRateLimit: -1, AuthFailureRate: -1,
		Console: console.Options{InsecureCookie: true}})
	srv.Config.Handler = api.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	n := &node{t: t, url: srv.URL}
	testkit.WaitFor(t, 15*time.Second, "the API to serve", func() bool {
		code, _ := n.call("GET", "/fhir/Organization/admin", adminToken, nil, nil)
		return code == 200
	})
	return n
}

// call makes one API request; body is JSON unless it is a string.
func (n *node) call(method, path, token string, body any, header map[string]string) (int, []byte) {
	n.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			n.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, n.url+path, r)
	if err != nil {
		n.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set(locator.HeaderPurposeOfUse, "OPERATIONS")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// must makes a request that must answer want, and decodes its answer into out.
func (n *node) must(want int, method, path, token string, body, out any) {
	n.t.Helper()
	code, data := n.call(method, path, token, body, nil)
	if code != want {
		n.t.Fatalf("%s %s: %d %s, want %d", method, path, code, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			n.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

// addParticipant adds a participant and returns its token.
func (n *node) addParticipant(p model.Participant) string {
	n.t.Helper()
	o := fhir.Organization{ResourceType: "Organization", ID: p.ID, Name: p.Name,
		Extension: []fhir.Extension{{URL: fhir.ParticipantRoleURL, ValueCode: string(p.Role)}},
		Type:      []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: fhir.ParticipantKindSystem, Code: string(p.Kind)}}}}}
	if p.IdentifierSystem != "" {
		o.Identifier = []fhir.Identifier{{Use: "official", System: fhir.URISystem, Value: p.IdentifierSystem}}
	}
	var out fhir.Organization
	n.must(201, "POST", "/fhir/Organization", adminToken, o, &out)
	for _, e := range out.Extension {
		if e.URL == fhir.ParticipantTokenURL {
			return e.ValueString
		}
	}
	n.t.Fatalf("no token for %s", p.ID)
	return ""
}

// world is a node with a generated population registered, its facilities as
// participants, a stewards' participant and a hospital without the steward role.
type world struct {
	*node
	stewardToken, hospitalToken string
	persons, records            int
}

// facilities are the assigning authorities mpi/synth gives its records.
func facilityName(i int) string {
	return []string{"St Mary's Hospital", "Valley Medical Center", "Riverside Clinic", "Northgate Family Practice", "County Lab Services",
		"Lakeside Hospital", "Mercy Health", "Pine Ridge Practice", "Summit Orthopedics", "Harbor Pediatrics"}[i%10]
}

func newWorld(t testing.TB, persons int) *world {
	t.Helper()
	return newWorldIn(t, persons, "")
}

// newWorldIn is newWorld on a data directory that may already hold it (built by an earlier
// run with the same number of persons): then nothing is registered again, and the stewards'
// token is rotated to learn a valid one.
func newWorldIn(t testing.TB, persons int, dataDir string) *world {
	t.Helper()
	reuse := false
	if dataDir != "" {
		_, err := os.Stat(filepath.Join(dataDir, "state.db"))
		reuse = err == nil
	}
	n := startNode(t, dataDir)
	w := &world{node: n}
	if reuse {
		var o fhir.Organization
		n.must(200, "POST", "/fhir/Organization/hie-stewards/$rotate-token", adminToken, nil, &o)
		for _, e := range o.Extension {
			if e.URL == fhir.ParticipantTokenURL {
				w.stewardToken = e.ValueString
			}
		}
		var count struct {
			Persons int64 `json:"persons"`
		}
		n.must(200, "GET", "/v1/mpi/scores?limit=1", adminToken, nil, &count)
		w.persons = int(count.Persons)
		return w
	}
	w.stewardToken = n.addParticipant(model.Participant{ID: "hie-stewards", Name: "HIE data stewards", Kind: model.KindHIE, Role: model.RoleSteward})
	w.hospitalToken = n.addParticipant(model.Participant{ID: "general-hospital", Name: "General Hospital", Kind: model.KindHospital, Role: model.RoleParticipant,
		IdentifierSystem: "urn:oid:2.16.840.1.113883.3.9999"})
	rows, sum, err := synth.Rows(context.Background(), synth.Options{Persons: persons, Seed: 1, Knobs: synth.DefaultKnobs()})
	if err != nil {
		t.Fatal(err)
	}
	w.persons, w.records = sum.Persons, sum.Records
	systems := map[string]bool{}
	var records []command.PatientRecord
	for _, row := range rows {
		r := row.Record
		if !systems[r.System] {
			systems[r.System] = true
			i := len(systems) - 1
			n.addParticipant(model.Participant{ID: fmt.Sprintf("facility-%d", i+1), Name: facilityName(i), Kind: model.KindHospital, Role: model.RoleParticipant, IdentifierSystem: r.System})
		}
		records = append(records, command.PatientRecord{System: r.System, Value: r.Value, Given: r.Given, Family: r.Family, Suffix: r.Suffix,
			BirthDate: r.BirthDate, Sex: r.Sex, AddressLines: r.AddressLines, City: r.City, State: r.State, PostalCode: r.PostalCode,
			Phones: r.Phones, Email: r.Email, SSN: r.SSN})
	}
	w.importRecords(records)
	return w
}

// importRecords registers records through the batch route, as `rls import` does: batches
// of 2,000 in file order, two in flight.
func (w *world) importRecords(records []command.PatientRecord) {
	w.t.Helper()
	const size = 2000
	var batches [][]command.PatientRecord
	for i := 0; i < len(records); i += size {
		batches = append(batches, records[i:min(i+size, len(records))])
	}
	var mu sync.Mutex
	var failures []string
	work := make(chan []command.PatientRecord)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				code, data := w.call("POST", "/v1/patients/batch", adminToken, locator.BatchRequest{Records: b}, nil)
				var res locator.BatchResponse
				if code != 200 || json.Unmarshal(data, &res) != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("batch: %d %.300s", code, data))
					mu.Unlock()
					continue
				}
				for _, r := range res.Results {
					if r.Status != 0 {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s: %d %s", r.Record, r.Status, r.Error))
						mu.Unlock()
					}
				}
			}
		}()
	}
	for _, b := range batches {
		work <- b
	}
	close(work)
	wg.Wait()
	if len(failures) > 0 {
		w.t.Fatalf("%d registrations failed, the first: %s", len(failures), failures[0])
	}
}

// reviewItem is what the tests read of GET /v1/review.
type reviewItem struct {
	Seq  uint64 `json:"seq"`
	Item struct {
		Record     string `json:"record"`
		EUID       string `json:"euid"`
		Reason     string `json:"reason"`
		Score      float64
		Candidates []struct {
			EUID   string  `json:"euid"`
			Record string  `json:"record"`
			Score  float64 `json:"score"`
		} `json:"candidates"`
	} `json:"item"`
	Resolution *struct {
		Decision string `json:"decision"`
		EUID     string `json:"euid"`
		Actor    string `json:"actor"`
		Reason   string `json:"reason"`
	} `json:"resolution"`
}

func (w *world) reviews(status string) []reviewItem {
	w.t.Helper()
	var items []reviewItem
	w.must(200, "GET", "/v1/review?status="+status, adminToken, nil, &items)
	return items
}

// personOf is the person a record is on now.
func (w *world) personOf(record string) string {
	w.t.Helper()
	var p fhir.Patient
	w.must(200, "GET", "/fhir/Patient/"+model.PatientID(record), adminToken, nil, &p)
	for _, id := range p.Identifier {
		if id.System == fhir.EUIDSystem {
			return id.Value
		}
	}
	w.t.Fatalf("record %s has no person", record)
	return ""
}

// chromium finds Debian's Chromium, as CI installs it (.ci/run), or RLS_CHROMIUM. Without
// it the test is skipped, unless RLS_REQUIRE_BROWSER is set (CI sets it), when it fails.
func chromium(t *testing.T) string {
	t.Helper()
	if path := os.Getenv("RLS_CHROMIUM"); path != "" {
		return path
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("RLS_REQUIRE_BROWSER") != "" {
		t.Fatal("Chromium is not installed, and RLS_REQUIRE_BROWSER says the browser tests must run: apt-get install -y chromium")
	}
	t.Skip("Chromium is not installed (apt-get install -y chromium, or RLS_CHROMIUM=path): the console's browser tests are skipped")
	return ""
}

// browser starts headless Chromium at path with a fresh profile and nothing that reaches
// the network on its own.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

// screenshots is where the pages' pictures go: RLS_CONSOLE_SCREENSHOTS, or the test's
// artifact directory (kept with `go test -artifacts`, under -outputdir).
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RLS_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return t.ArtifactDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func save(t *testing.T, dir, name string, png []byte) {
	t.Helper()
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

// pageURL is the console's address for a hash route.
func (n *node) pageURL(route string) string {
	u, _ := url.Parse(n.url + "/ui/")
	u.Fragment = strings.TrimPrefix(route, "#")
	return u.String()
}
