package locator

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pagingScript pages through a PDQm search with fhir-kit-client, a FHIR client integration
// engines use: search, then nextPage while the Bundle has a next link. It prints the number
// of pages and the ids found.
const pagingScript = `
const path = require('path');
(async () => {
  const { Client } = await import(path.join(process.env.MODULES, 'fhir-kit-client', 'dist', 'index.js'));
  const client = new Client({ baseUrl: process.env.BASE, customHeaders: {
    Authorization: 'Bearer ' + process.env.TOKEN, 'X-Rls-Purpose-Of-Use': 'TREAT' } });
  let bundle = await client.search({ resourceType: 'Patient', searchParams: { family: 'Lovelace', birthdate: '1915', _count: 2 } });
  const ids = [];
  let pages = 0;
  while (bundle) {
    pages++;
    for (const e of bundle.entry || []) ids.push(e.resource.id);
    bundle = await client.nextPage({ bundle });
  }
  console.log('pages=' + pages + ' ids=' + ids.join(','));
})().catch((e) => { console.error(e); process.exit(1); });
`

// TestFHIRClientPagesThroughPDQm: a real FHIR client library follows rls's next links to
// the end of a PDQm search. It needs node and fhir-kit-client (CI installs them and sets
// RLS_FHIR_CLIENT_MODULES to the node_modules directory); without them it is skipped.
func TestFHIRClientPagesThroughPDQm(t *testing.T) {
	modules := os.Getenv("RLS_FHIR_CLIENT_MODULES")
	node, err := exec.LookPath("node")
	if modules == "" || err != nil {
		t.Skip("set RLS_FHIR_CLIENT_MODULES to a node_modules holding fhir-kit-client (and have node) to run")
	}
	a := newTestAPI(t)
	tokA, _ := a.participants()
	given := []string{"Ada", "Anne", "Byron", "Clara", "Dora"}
	for i, g := range given {
		p := patientJSON(sysA, "FK-"+g, g, "Lovelace", "1915-12-1"+string(rune('0'+i)), "female", "62704", "")
		if code, body, _ := a.do("POST", "/fhir/Patient", tokA, p, nil); code != 201 {
			t.Fatalf("register %s: %d %s", g, code, body)
		}
	}
	script := filepath.Join(t.TempDir(), "page.cjs")
	if err := os.WriteFile(script, []byte(pagingScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "MODULES="+modules, "BASE="+a.url+"/fhir", "TOKEN="+tokA)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fhir-kit-client: %v\n%s", err, out)
	}
	line := strings.TrimSpace(string(out))
	if !strings.HasPrefix(line, "pages=3 ") || strings.Count(line, ",") != len(given)-1 {
		t.Fatalf("fhir-kit-client paged %q: want 3 pages and %d patients", line, len(given))
	}
}
