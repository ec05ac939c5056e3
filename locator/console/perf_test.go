package console_test

import (
	"flag"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var (
	reviewPersons = flag.Int("console.persons", 0, "persons of the generated index TestReviewPageSpeed measures the review page on (100000 for the figure in the README); 0 skips it")
	reviewDataDir = flag.String("console.datadir", "", "TestReviewPageSpeed: keep the node's data here, and reuse what an earlier run left (registering 100,000 persons takes minutes)")
)

// TestReviewPageSpeed measures how long the review page of an item with two candidates
// takes in the browser, from the route to the last node drawn (every API call it makes
// included, each audited), on an index of -console.persons generated persons:
//
//	go test -run TestReviewPageSpeed -timeout 60m -v ./locator/console/ -args -console.persons=100000 -console.datadir=/tmp/console100k
//
// (The flags go after -args, in the -flag=value form: go test reads a value after a flag it
// does not know as a package.)
//
// It opens up to ten such items, each by loading the page anew (scripts, session check, every
// API call), and requires the median, navigation included, under 300 ms.
func TestReviewPageSpeed(t *testing.T) {
	if *reviewPersons == 0 {
		t.Skip("the review page's speed is measured with -args -console.persons=N (100000 for the README's figure)")
	}
	path := chromium(t)
	start := time.Now()
	w := newWorldIn(t, *reviewPersons, *reviewDataDir)
	if w.records > 0 {
		t.Logf("index: %d persons, %d records registered in %v", w.persons, w.records, time.Since(start).Round(time.Second))
	} else {
		t.Logf("index: %d persons (as an earlier run left it in %s)", w.persons, *reviewDataDir)
	}
	ctx := browser(t, path)
	var two []reviewItem
	open := w.reviews("open")
	for _, it := range open {
		if len(it.Item.Candidates) == 2 {
			two = append(two, it)
		}
	}
	if len(two) == 0 {
		t.Fatalf("none of %d open review items has two candidates", len(open))
	}
	t.Logf("%d open review items, %d with two candidates", len(open), len(two))
	p := &page{t: t, ctx: ctx, n: w.node}
	p.signIn(w.stewardToken, "Dana Steward")
	p.rendered("#/queue")
	var inPage, wall []float64
	for _, it := range two[:min(10, len(two))] {
		route := fmt.Sprintf("#/review/%d", it.Seq)
		began := time.Now()
		p.do("open "+route, chromedp.Navigate(w.pageURL(route)))
		p.rendered(route)
		wall = append(wall, float64(time.Since(began).Microseconds())/1000)
		ms, err := strconv.ParseFloat(eval[string](p, "document.documentElement.dataset.renderMs"), 64)
		if err != nil {
			t.Fatal(err)
		}
		inPage = append(inPage, ms)
		calls := eval[[]string](p, `performance.getEntriesByType("resource").filter(e => e.initiatorType === "fetch").slice(-12).map(e => e.name.replace(location.origin, "") + " " + e.duration.toFixed(1))`)
		t.Logf("%s: drawn in %.1f ms (navigation included: %.1f ms); last calls: %s", route, ms, wall[len(wall)-1], strings.Join(calls, ", "))
		if n := eval[int](p, `document.querySelectorAll(".col-candidate").length`); n != 2 {
			t.Fatalf("%s shows %d candidates", route, n)
		}
	}
	med := func(v []float64) float64 { s := slices.Clone(v); sort.Float64s(s); return s[len(s)/2] }
	t.Logf("review page with two candidates on %d persons: median %.1f ms in the page (route to last node), %.1f ms with the navigation, over %d items",
		w.persons, med(inPage), med(wall), len(inPage))
	if m := med(wall); m >= 300 {
		t.Errorf("the review page took %.1f ms (median, navigation included), the bound is 300 ms", m)
	}
}
