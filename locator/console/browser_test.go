package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/raft/model"
)

// page drives one browser tab through the console.
type page struct {
	t   *testing.T
	ctx context.Context
	n   *node
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page (through DevTools, so the page's
// own policy, which forbids eval, does not apply) and decodes its value.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true. (chromedp's Poll compiles its
// predicate with new Function, which the console's policy refuses.)
func (p *page) waitJS(what, expr string) {
	p.t.Helper()
	if err := testkit.Poll(20*time.Second, 20*time.Millisecond, func() bool { return eval[bool](p, "Boolean("+expr+")") }); err != nil {
		body := eval[string](p, "document.body.innerText.slice(0, 2000)")
		p.t.Fatalf("waiting for %s (%s): %v; the page says:\n%s", what, expr, err, body)
	}
}

// rendered waits until the console has finished drawing a route.
func (p *page) rendered(route string) {
	p.t.Helper()
	p.waitJS("page "+route, fmt.Sprintf("document.documentElement.dataset.rendered === %q", route))
}

func (p *page) keys(keys ...string) {
	p.t.Helper()
	for _, k := range keys {
		p.do("key "+k, chromedp.KeyEvent(k))
	}
}

func (p *page) shot(dir, name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	save(p.t, dir, name, png)
}

// fullShot is a picture of the whole page, scrolled.
func (p *page) fullShot(dir, name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	save(p.t, dir, name, png)
}

func (p *page) signIn(token, user string) {
	p.t.Helper()
	p.do("sign in",
		chromedp.Navigate(p.n.url+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.Click(chromedp.CSS("form.signin button[type=submit]")),
	)
}

// confirm does one of the person page's steward actions: it clicks the button opener finds
// (a JavaScript expression; none when the dialog is already open), checks that the dialog
// holds back without a reason, gives the reason, confirms, and waits for the message
// that says it was done.
func (p *page) confirm(what, opener, reason, done string) {
	p.t.Helper()
	if opener != "" {
		eval[chromedp.Void](p, opener+".click()")
	}
	p.waitJS(what+": the dialog", `document.querySelector("dialog[open] #confirm-do")`)
	p.do(what+": confirm without a reason", chromedp.Click(chromedp.ID("confirm-do")))
	// The reason is a required field: the browser's validation holds the form back (or, past
	// it, the dialog's own check refuses).
	p.waitJS(what+": the dialog asks for the reason", `document.querySelector("dialog[open] #confirm-reason:invalid, dialog[open] .error:not([hidden])")`)
	p.do(what+": give the reason and confirm", chromedp.SendKeys(chromedp.ID("confirm-reason"), reason), chromedp.Click(chromedp.ID("confirm-do")))
	p.waitJS(what+": done", fmt.Sprintf(`!document.querySelector("dialog[open]") && document.getElementById("status").textContent.includes(%s)`, jsString(done)))
}

// noOverflow checks that the page needs no sideways scrolling at the current viewport.
func (p *page) noOverflow(what string) {
	p.t.Helper()
	if over := eval[float64](p, "document.documentElement.scrollWidth - document.documentElement.clientWidth"); over > 1 {
		p.t.Errorf("%s: the page is %v px wider than the window", what, over)
	}
}

// TestConsoleInBrowser drives the console in headless Chromium as a data steward would:
// sign in, work the queue by keyboard, link one item and find both records and the history
// entry on the person, keep another separate, search, look at operations; then checks that
// the API agrees, that every page is audited under the steward's name, that no URL or
// history entry carries more than opaque ids, that the page's policy refused nothing, and
// that the pages reflow at 200% zoom. It writes a screenshot of each main page.
func TestConsoleInBrowser(t *testing.T) {
	path := chromium(t)
	w := newWorld(t, 600)
	ctx := browser(t, path)
	dir := screenshots(t)
	open := w.reviews("open")
	var withCandidates []reviewItem
	for _, it := range open {
		if len(it.Item.Candidates) > 0 && it.Item.Reason != "duplicate_persons" {
			withCandidates = append(withCandidates, it)
		}
	}
	if len(withCandidates) < 2 {
		t.Fatalf("the generated population left %d open review items with a candidate; the test needs 2", len(withCandidates))
	}
	t.Logf("%d persons, %d records, %d open review items", w.persons, w.records, len(open))
	p := &page{t: t, ctx: ctx, n: w.node}

	// Sign in.
	p.do("open the console", chromedp.Navigate(w.url+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	p.shot(dir, "01-sign-in")
	p.signIn(w.stewardToken, "Dana Sköld")
	p.rendered("#/queue")
	if got := eval[int](p, `document.querySelectorAll("#queue-results tbody tr[data-seq]").length`); got != len(open) {
		t.Fatalf("the queue shows %d items, the API %d", got, len(open))
	}
	p.shot(dir, "02-review-queue")

	// Sort by score, descending, then back by item number; filter by text.
	p.do("sort by score", chromedp.Click(chromedp.CSS(`#queue-results th:nth-child(3) button`)), chromedp.Click(chromedp.CSS(`#queue-results th:nth-child(3) button`)))
	scores := eval[[]float64](p, `[...document.querySelectorAll("#queue-results tbody tr[data-seq]")].map(tr => parseFloat(tr.children[2].textContent.replace("−", "-").replace("+", "")))`)
	if !slices.IsSortedFunc(scores, func(a, b float64) int { return int(b*100) - int(a*100) }) {
		t.Errorf("sorted by score, descending: %v", scores)
	}
	if got := eval[string](p, `document.querySelector("#queue-results th:nth-child(3)").getAttribute("aria-sort")`); got != "descending" {
		t.Errorf("aria-sort of the score column: %q", got)
	}
	p.do("sort by item", chromedp.Click(chromedp.CSS(`#queue-results th:nth-child(1) button`)))

	// Item A by keyboard: move down to it with j, open with Enter.
	a, b := withCandidates[0], withCandidates[1]
	order := eval[[]uint64](p, `[...document.querySelectorAll("#queue-results tbody tr[data-seq]")].map(tr => Number(tr.dataset.seq))`)
	idx := slices.Index(order, a.Seq)
	p.do("focus the page", chromedp.Click(chromedp.CSS("main h1")))
	for range idx {
		p.keys("j")
	}
	if sel := eval[uint64](p, `Number(document.querySelector("#queue-results tr.selected").dataset.seq)`); sel != a.Seq {
		t.Fatalf("after %d × j the selection is #%d, want #%d", idx, sel, a.Seq)
	}
	p.keys(kb.Enter)
	p.rendered(fmt.Sprintf("#/review/%d", a.Seq))
	renderMs := eval[string](p, "document.documentElement.dataset.renderMs")
	t.Logf("review item #%d (%d candidates) drawn in %s ms", a.Seq, len(a.Item.Candidates), renderMs)

	// The side-by-side view: the record and each candidate, field by field, coloured.
	if n := eval[int](p, `document.querySelectorAll(".col-candidate").length`); n != len(a.Item.Candidates) {
		t.Fatalf("%d candidate columns, want %d", n, len(a.Item.Candidates))
	}
	if n := eval[int](p, `document.querySelectorAll("table.compare tbody td.cmp").length`); n < 9*len(a.Item.Candidates) {
		t.Fatalf("%d fields compared, coloured by agreement, for %d candidates", n, len(a.Item.Candidates))
	}
	if n := eval[int](p, `[...document.querySelectorAll("table.compare tbody td.cmp")].filter(td => /lvl-(agree|partial|disagree|missing)/.test(td.className) && /bits/.test(td.textContent)).length`); n < 9*len(a.Item.Candidates) {
		t.Fatalf("only %d compared fields carry their agreement level and weight", n)
	}
	if n := eval[int](p, `document.querySelectorAll(".col-candidate article.record").length`); n < len(a.Item.Candidates) {
		t.Fatalf("%d candidate source records shown", n)
	}
	if n := eval[int](p, `document.querySelectorAll("svg.gauge line.threshold").length`); n != 2 {
		t.Fatalf("the score gauge shows %d thresholds", n)
	}
	p.shot(dir, "03-review-item")
	p.fullShot(dir, "03-review-item-whole")

	// Link, by keyboard: r, the reason, Esc, l.
	p.keys("r")
	p.do("type the reason", chromedp.KeyEvent("Same person: confirmed by phone with the practice"))
	p.keys(kb.Escape, "l")
	target := a.Item.Candidates[0].EUID
	p.rendered("#/person/" + target)
	if msg := eval[string](p, `document.getElementById("status").textContent`); !strings.Contains(msg, fmt.Sprintf("Item #%d resolved", a.Seq)) {
		t.Errorf("no confirmation after linking: %q", msg)
	}
	// The person shows both records and the history entry.
	records := eval[string](p, `[...document.querySelectorAll("#sec-source-records ~ .table-wrap tbody tr, section[aria-labelledby=sec-source-records] tbody tr")].map(tr => tr.textContent).join("\n")`)
	for _, rec := range []string{a.Item.Record, a.Item.Candidates[0].Record} {
		mrn := rec[strings.Index(rec, "|")+1:]
		if !strings.Contains(records, mrn) {
			t.Errorf("the person view lacks record %s:\n%s", rec, records)
		}
	}
	history := eval[string](p, `document.querySelector("ol.timeline").textContent`)
	if !strings.Contains(history, "Review resolved") || !strings.Contains(history, "confirmed by phone") || !strings.Contains(history, "hie-stewards") {
		t.Errorf("the history lacks the resolution:\n%s", history)
	}
	p.shot(dir, "04-person")
	p.fullShot(dir, "04-person-whole")

	// Item B: open it from the queue by its link, keep it separate.
	p.keys("g", "q")
	p.rendered("#/queue")
	p.do("open item B", chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="#/review/%d"]`, b.Seq))))
	p.rendered(fmt.Sprintf("#/review/%d", b.Seq))
	p.do("type the reason", chromedp.SendKeys(chromedp.ID("reason"), "Different people: another birth date on the ID card"))
	p.keys(kb.Escape, "s")
	p.waitJS("the confirmation", fmt.Sprintf(`document.getElementById("status").textContent.includes("Item #%d resolved: kept separate")`, b.Seq))

	// The API agrees.
	resolved := map[uint64]reviewItem{}
	for _, it := range w.reviews("resolved") {
		resolved[it.Seq] = it
	}
	if r := resolved[a.Seq].Resolution; r == nil || r.Decision != "link" || r.Actor != "hie-stewards" || r.EUID != target {
		t.Errorf("item A as the API has it: %+v", r)
	}
	if r := resolved[b.Seq].Resolution; r == nil || r.Decision != "separate" || !strings.Contains(r.Reason, "another birth date") {
		t.Errorf("item B as the API has it: %+v", r)
	}
	if got := w.personOf(a.Item.Record); got != target {
		t.Errorf("item A's record is on %s, want %s", got, target)
	}
	if got := w.personOf(b.Item.Record); got == b.Item.Candidates[0].EUID {
		t.Errorf("item B's record was linked to its candidate")
	}

	// Search, by POST: the name stays out of the URL.
	var pat struct {
		Name []struct {
			Family string `json:"family"`
		} `json:"name"`
		BirthDate string `json:"birthDate"`
	}
	w.must(200, "GET", "/fhir/Patient/"+model.PatientID(a.Item.Record), adminToken, nil, &pat)
	p.keys("g", "s")
	p.rendered("#/search")
	// (The second key of "g s" may reach the field the page focuses: CDP sends the key's
	// character as an event of its own, which the keydown's preventDefault does not stop.)
	eval[chromedp.Void](p, `document.getElementById("s-family").value = ""`)
	p.do("search", chromedp.SendKeys(chromedp.ID("s-family"), pat.Name[0].Family), chromedp.SendKeys(chromedp.ID("s-birthdate"), pat.BirthDate),
		chromedp.Click(chromedp.CSS("form.search button[type=submit]")))
	p.waitJS("search results", `document.querySelector("#search-results tbody tr td")`)
	if got := eval[string](p, `document.getElementById("search-results").textContent`); !strings.Contains(got, target) {
		t.Errorf("the search for %q born %q does not lead to person %s: %s", pat.Name[0].Family, pat.BirthDate, target, got)
	}
	p.shot(dir, "05-search")

	// The steward's tools on the person, each behind a dialog that wants a reason: unlink
	// item A's record, merge the person it then makes back into the target, undo the merge.
	mrnA := a.Item.Record[strings.Index(a.Item.Record, "|")+1:]
	p.do("open the person", chromedp.Navigate(w.pageURL("#/person/"+target)))
	p.rendered("#/person/" + target)
	p.confirm("unlink", fmt.Sprintf(`[...document.querySelectorAll("section[aria-labelledby=sec-source-records] tbody tr")].find(tr => tr.textContent.includes(%s)).querySelector("button")`, jsString(mrnA)),
		"Different person: the practice mixed up two charts", "Record unlinked")
	p.rendered("#/person/" + target)
	apart := w.personOf(a.Item.Record)
	if apart == target {
		t.Fatalf("after the unlink, item A's record is still on %s", target)
	}
	if !strings.Contains(eval[string](p, `document.querySelector("ol.timeline").textContent`), "mixed up two charts") {
		t.Errorf("the unlink is not in the person's history")
	}
	p.do("open the record's new person", chromedp.Navigate(w.pageURL("#/person/"+apart)))
	p.rendered("#/person/" + apart)
	p.do("open the merge dialog", chromedp.Click(chromedp.ID("merge")))
	p.waitJS("the merge dialog", `document.querySelector("dialog[open] #merge-into")`)
	p.do("name the person to merge into", chromedp.SendKeys(chromedp.ID("merge-into"), target))
	p.confirm("merge", "", "The charts were one person after all", "Merged "+apart+" into "+target)
	p.rendered("#/person/" + target)
	if got := w.personOf(a.Item.Record); got != target {
		t.Fatalf("after the merge, item A's record is on %s, want %s", got, target)
	}
	p.shot(dir, "04b-person-after-merge")
	p.confirm("unmerge", `[...document.querySelectorAll("ol.timeline button")].find(b => b.textContent.includes("Undo this merge"))`,
		"Merged by mistake", "Unmerged")
	p.rendered("#/person/" + apart)
	if got := w.personOf(a.Item.Record); got != apart {
		t.Errorf("after the unmerge, item A's record is on %s, want %s", got, apart)
	}

	// Operations.
	p.keys("g", "o")
	p.rendered("#/ops")
	if n := eval[int](p, `document.querySelectorAll("svg.histogram line.threshold").length`); n != 2 {
		t.Errorf("the histogram marks %d thresholds", n)
	}
	if n := eval[int](p, `document.querySelectorAll("svg.histogram rect").length`); n < 3 {
		t.Errorf("the histogram has %d bars", n)
	}
	if n := eval[int](p, `document.querySelectorAll("svg.weights rect").length`); n < 30 {
		t.Errorf("the weights chart has %d bars", n)
	}
	if got := eval[string](p, `document.getElementById("ops-cluster").textContent`); !strings.Contains(got, "admin role") {
		t.Errorf("a steward sees the cluster's members: %s", got)
	}
	p.shot(dir, "06-operations-steward")

	// 200% zoom: the same pages in half the width, twice the scale.
	p.do("zoom to 200%", chromedp.EmulateViewport(640, 400, chromedp.EmulateScale(2)))
	for _, route := range []string{"#/queue", fmt.Sprintf("#/review/%d", withCandidates[len(withCandidates)-1].Seq), "#/person/" + target, "#/search", "#/ops"} {
		p.do("go to "+route, chromedp.Navigate(w.pageURL(route)))
		p.rendered(route)
		p.noOverflow(route + " at 200%")
		if strings.HasPrefix(route, "#/review/") {
			p.shot(dir, "07-review-item-200pct")
		}
	}
	p.do("zoom back", chromedp.EmulateViewport(1280, 800))

	// The admin: cluster members and the audit trail.
	p.do("sign out", chromedp.Click(chromedp.CSS("#who button")))
	p.waitJS("the sign-in form", `document.getElementById("token")`)
	p.signIn(adminToken, "Pat Privacy")
	p.rendered("#/queue")
	p.keys("g", "o")
	p.rendered("#/ops")
	if got := eval[string](p, `document.getElementById("ops-cluster").textContent`); !strings.Contains(got, "Leader") || !strings.Contains(got, "healthy") {
		t.Errorf("the cluster's members: %s", got)
	}
	p.shot(dir, "08-operations")
	p.keys("g", "a")
	p.rendered("#/audit")
	p.shot(dir, "09-audit")
	auditText := eval[string](p, `document.getElementById("audit-results").textContent`)
	if !strings.Contains(auditText, "Dana Sköld") || !strings.Contains(auditText, "review-resolve") {
		t.Errorf("the audit page lacks the steward's actions: %.500s", auditText)
	}

	// No URL and no history entry carries more than opaque ids.
	entries, err := chromedp.Run(ctx, chromedp.NavigationEntries())
	if err != nil {
		t.Fatal(err)
	}
	allowed := regexp.MustCompile(`^/ui/(#/(queue|search|ops|audit|review/\d+|person/[A-Za-z0-9.-]+)?)?$`)
	for _, e := range entries.Entries {
		if e.URL == "about:blank" {
			continue // the new tab, before the console
		}
		if u := strings.TrimPrefix(e.URL, w.url); !allowed.MatchString(u) || strings.Contains(e.Title, pat.Name[0].Family) {
			t.Errorf("history entry %q (%q) carries more than opaque ids", e.URL, e.Title)
		}
	}
	if v := eval[string](p, `document.documentElement.dataset.cspViolations || ""`); v != "" {
		t.Errorf("the page's content security policy refused %s thing(s)", v)
	}

	// Every view was audited like the API call it made, on behalf of the steward.
	var list locator.AuditList
	w.must(200, "GET", "/v1/audit?participant=hie-stewards&limit=10000", adminToken, nil, &list)
	seen := map[string]int{}
	for _, e := range list.Entries {
		if e.OnBehalfOf != "Dana Sköld" {
			t.Errorf("audit entry %s %s without the steward's name: %q", e.Action, e.Path, e.OnBehalfOf)
		}
		seen[e.Action]++
	}
	for _, action := range []string{"console-sign-in", "review-list", "review-read", "review-resolve", "steward-unlink", "steward-merge", "steward-unmerge", "person-read", "patient-read", "person-history", "locate", "document-search", "consent-search", "patient-search"} {
		if seen[action] == 0 {
			t.Errorf("no audit entry of %s (seen %v)", action, seen)
		}
	}
}

// TestConsoleRefusesCrossSiteAndNonStewards: a page of another site that posts a form, or
// calls fetch, to resolve a review item with the steward's session changes nothing; a
// participant without the steward role cannot sign in.
func TestConsoleRefusesCrossSiteAndNonStewards(t *testing.T) {
	path := chromium(t)
	w := newWorld(t, 300)
	ctx := browser(t, path)
	open := w.reviews("open")
	if len(open) == 0 {
		t.Fatal("no open review item to attack")
	}
	seq := open[0].Seq
	p := &page{t: t, ctx: ctx, n: w.node}

	// A participant without the steward role is refused at sign-in.
	p.signIn(w.hospitalToken, "Someone")
	p.waitJS("the refusal", `document.querySelector("form.signin .error:not([hidden])")`)
	if msg := eval[string](p, `document.querySelector("form.signin .error").textContent`); !strings.Contains(msg, "steward role") || !strings.Contains(msg, "403") {
		t.Fatalf("refusal: %q", msg)
	}
	if code, body := w.call("GET", "/v1/review", w.hospitalToken, nil, nil); code != http.StatusForbidden {
		t.Fatalf("the hospital reading the queue: %d %s", code, body)
	}

	// The steward signs in; a page of another site (localhost is not 127.0.0.1's site)
	// then tries the change two ways.
	p.signIn(w.stewardToken, "Dana Sköld")
	p.rendered("#/queue")
	target := fmt.Sprintf("%s/v1/review/%d/resolve", w.url, seq)
	evil := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		switch r.URL.Path {
		case "/form":
			fmt.Fprintf(rw, `<!doctype html><form id=f method=post action=%q enctype="text/plain">`+
				`<input name='{"decision":"link","reason":"x","pad":"' value='"}'></form><script>document.getElementById("f").submit()</script>`, target)
		case "/fetch":
			fmt.Fprintf(rw, `<!doctype html><pre id=out>pending</pre><script>
fetch(%q, {method: "POST", credentials: "include", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: '{"decision":"link","reason":"x"}'})
  .then(() => document.getElementById("out").textContent = "sent", e => document.getElementById("out").textContent = "failed " + e);
</script>`, target)
		}
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	p.do("the cross-site form", chromedp.Navigate(evilURL+"/form"))
	p.waitJS("the form's answer", `location.href.startsWith(`+jsString(w.url)+`) && document.body && document.body.innerText.length > 0`)
	answer := eval[string](p, "document.body.innerText")
	if !strings.Contains(answer, "OperationOutcome") || !(strings.Contains(answer, "cross-origin") || strings.Contains(answer, "login")) {
		t.Errorf("the cross-site form post was answered: %.400s", answer)
	}
	p.do("the cross-site fetch", chromedp.Navigate(evilURL+"/fetch"))
	p.waitJS("the fetch", `document.getElementById("out").textContent !== "pending"`)

	// The refused sign-in is in the audit trail, under the hospital's name.
	var refused locator.AuditList
	w.must(200, "GET", "/v1/audit?participant=general-hospital&limit=100", adminToken, nil, &refused)
	if !slices.ContainsFunc(refused.Entries, func(e model.AuditEntry) bool {
		return e.Action == "console-sign-in" && e.Status == http.StatusForbidden && e.OnBehalfOf == "Someone"
	}) {
		t.Errorf("the hospital's refused sign-in is not audited: %+v", refused.Entries)
	}

	for _, it := range w.reviews("open") {
		if it.Seq == seq {
			t.Logf("review item #%d is still open after the cross-site attempts (form answered: %.120s)", seq, strings.Join(strings.Fields(answer), " "))
			return
		}
	}
	t.Fatalf("a cross-site request resolved review item #%d", seq)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
