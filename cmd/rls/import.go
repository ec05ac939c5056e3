package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/raft/command"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "bulk-load data into the cluster",
		Subcommands: []*cli.Command{{
			Name:      "patients",
			Usage:     "register the patients of a file (csv, febrl, or FHIR NDJSON: one Patient per line)",
			ArgsUsage: "FILE",
			Description: "Records are sent in batches (one replicated command each) with several batches in flight.\n" +
				"Progress is saved beside the file (FILE.rls-import, or -progress-file); running the same command\n" +
				"again after an interruption resumes after the last batch acknowledged, if the file's content and\n" +
				"the target address are unchanged. Re-sending a record only updates it (its identifier is its\n" +
				"key), so a resumed import never duplicates records.",
			Flags: append(clientFlags(),
				&cli.StringFlag{Name: "format", Usage: "csv, febrl or ndjson (default: ndjson for .ndjson files, csv otherwise)"},
				&cli.IntFlag{Name: "batch", Value: 500, Usage: "records per batch (at most 2000)"},
				&cli.IntFlag{Name: "parallel", Value: 4, Usage: "batches in flight (the leader proposes them in file order all the same)"},
				&cli.StringFlag{Name: "system", Usage: "register every record under this identifier `URI` instead of the file's"},
				&cli.BoolFlag{Name: "restart", Usage: "ignore saved progress and start from the first record"},
				&cli.StringFlag{Name: "progress-file", Usage: "keep resumable progress in this `FILE` (default: FILE.rls-import beside the input)"},
			),
			Action: importPatients,
		}, {
			Name:      "documents",
			Usage:     "register the DocumentReferences of an NDJSON file (one per line)",
			ArgsUsage: "FILE.ndjson",
			Description: "Sent in batches with several in flight, with progress, a summary and resumable progress\n" +
				"(FILE.rls-import), as for patients. A document's id derives from its masterIdentifier, so a\n" +
				"re-sent document only updates itself.",
			Flags: append(clientFlags(),
				&cli.IntFlag{Name: "batch", Value: 200, Usage: "documents per batch (at most 2000)"},
				&cli.IntFlag{Name: "parallel", Value: 4, Usage: "batches in flight"},
				&cli.BoolFlag{Name: "restart", Usage: "ignore saved progress and start from the first document"},
				&cli.StringFlag{Name: "progress-file", Usage: "keep resumable progress in this `FILE` (default: FILE.rls-import beside the input)"},
			),
			Action: importDocuments,
		}},
	}
}

// importItem is one record to send and the line it came from.
type importItem struct {
	line   int
	record *command.PatientRecord
	raw    json.RawMessage
}

// importSummary is what `rls import patients` reports.
type importSummary struct {
	File          string         `json:"file"`
	Records       int            `json:"records"`
	Skipped       int            `json:"skipped_resumed"`
	Outcomes      map[string]int `json:"outcomes"`
	Rejected      []rejectedLine `json:"rejected"`
	Seconds       float64        `json:"seconds"`
	RecordsPerSec float64        `json:"records_per_second"`
	Interrupted   bool           `json:"interrupted,omitempty"`
}

type rejectedLine struct {
	Line   int    `json:"line"`
	Record string `json:"record,omitempty"`
	// Status is the HTTP status the record would have had alone (0: refused before it was
	// sent, as not a JSON object).
	Status int    `json:"status,omitempty"`
	Error  string `json:"error"`
}

// checkpoint is the progress file: how many records from the start of the file are known
// to be registered, in which cluster. The content hash and target keep a checkpoint from
// skipping records of an edited file, or of the same file imported into another cluster.
type checkpoint struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Target string `json:"target"`
	Done   int    `json:"done"`
	Saved  string `json:"saved"`
}

// resumes reports whether cp is progress of this import: same content, same target.
func (cp checkpoint) resumes(size int64, sum, target string, items int) bool {
	return cp.Size == size && cp.SHA256 == sum && cp.Target == target && cp.Done <= items
}

// fileSHA256 is the hex SHA-256 of a file's content.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// importResult is one item's outcome in a batch answer.
type importResult struct {
	Key     string
	Outcome string
	// EUID is the person a registered patient record joined (empty for documents).
	EUID   string
	Status int
	Error  string
}

// batchSender registers one batch and returns each item's outcome, in item order.
// seq, when not nil, places the batch in its import stream (patients only).
type batchSender func(ctx context.Context, cl *client, items []importItem, seq *locator.BatchSequence) ([]importResult, error)

// importStream numbers the batches of one import run for the leader, which then proposes
// them in file order although several are in flight (locator.BatchSequence).
type importStream struct {
	name string
}

func newImportStream() importStream {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return importStream{name: "import-" + hex.EncodeToString(b[:])}
}

// place returns the place of batch number in the stream; settled is the lowest batch
// number not yet answered.
func (st importStream) place(number, settled int) *locator.BatchSequence {
	return &locator.BatchSequence{Stream: st.name, Number: uint64(number), Settled: uint64(min(settled, number))}
}

func importPatients(c *cli.Context) error {
	path, err := oneArg(c, "FILE")
	if err != nil {
		return err
	}
	items, malformed, err := loadImport(path, c.String("format"), c.String("system"))
	if err != nil {
		return err
	}
	return runImport(c, path, items, malformed, sendPatients)
}

func importDocuments(c *cli.Context) error {
	path, err := oneArg(c, "FILE")
	if err != nil {
		return err
	}
	items, malformed, err := loadImport(path, "ndjson", "")
	if err != nil {
		return err
	}
	return runImport(c, path, items, malformed, sendDocuments)
}

// runImport sends items in batches with several in flight, shows progress, keeps a
// checkpoint of the contiguous prefix acknowledged, and prints the summary.
func runImport(c *cli.Context, path string, items []importItem, malformed []rejectedLine, send batchSender) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	batchSize, parallel := c.Int("batch"), c.Int("parallel")
	if batchSize < 1 || batchSize > locator.MaxBatchRecords || parallel < 1 || parallel > 64 {
		return fmt.Errorf("-batch must be 1..%d and -parallel 1..64", locator.MaxBatchRecords)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	contentHash, err := fileSHA256(path)
	if err != nil {
		return err
	}
	cpPath := c.String("progress-file")
	if cpPath == "" {
		cpPath = path + ".rls-import"
	}
	start := 0
	if !c.Bool("restart") {
		if cp, err := readCheckpoint(cpPath); err == nil && cp.resumes(info.Size(), contentHash, cl.base, len(items)) {
			start = cp.Done
		}
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()

	sum := importSummary{File: path, Records: len(items) + len(malformed), Skipped: start, Outcomes: map[string]int{}, Rejected: malformed}
	begin := time.Now()
	progress := newImportProgress(c.App.ErrWriter, len(items)-start)
	type batch struct {
		seq   int
		items []importItem
	}
	batches := make(chan batch)
	var mu sync.Mutex
	done := map[int]int{} // batch seq → its item count, for the contiguous prefix
	next, doneRecords := 0, start
	var firstErr error
	stream := newImportStream()
	var wg sync.WaitGroup
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				place := func() *locator.BatchSequence {
					mu.Lock()
					defer mu.Unlock()
					return stream.place(b.seq, next)
				}
				results, err := sendWithRetries(ctx, cl, b.items, place, send)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				for i, res := range results {
					if res.Error != "" {
						sum.Rejected = append(sum.Rejected, rejectedLine{Line: b.items[i].line, Record: res.Key, Status: res.Status, Error: res.Error})
					} else {
						sum.Outcomes[res.Outcome]++
					}
				}
				done[b.seq] = len(b.items)
				for n, ok := done[next]; ok; n, ok = done[next] {
					doneRecords += n
					delete(done, next)
					next++
				}
				saveCheckpoint(cpPath, checkpoint{File: filepath.Base(path), Size: info.Size(), SHA256: contentHash, Target: cl.base, Done: doneRecords, Saved: time.Now().UTC().Format(time.RFC3339)})
				mu.Unlock()
				progress.add(len(b.items))
			}
		}()
	}
	seq := 0
feed:
	for i := start; i < len(items); i += batchSize {
		b := batch{seq: seq, items: items[i:min(i+batchSize, len(items))]}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		select {
		case batches <- b:
			seq++
		case <-ctx.Done():
			break feed
		}
	}
	close(batches)
	wg.Wait()
	progress.finish()
	sum.Seconds = time.Since(begin).Seconds()
	sent := len(sum.Rejected) - len(malformed)
	for _, n := range sum.Outcomes {
		sent += n
	}
	if sum.Seconds > 0 {
		sum.RecordsPerSec = float64(sent) / sum.Seconds
	}
	sort.Slice(sum.Rejected, func(i, j int) bool { return sum.Rejected[i].Line < sum.Rejected[j].Line })
	sum.Interrupted = ctx.Err() != nil
	if firstErr == nil && !sum.Interrupted && doneRecords == len(items) {
		os.Remove(cpPath)
	}
	if err := cl.render(c.App.Writer, sum, func() error { return printImportSummary(c.App.Writer, sum) }); err != nil {
		return err
	}
	switch {
	case firstErr != nil:
		return fmt.Errorf("import stopped after %d of %d records: %w; run the same command to resume", doneRecords, len(items), firstErr)
	case sum.Interrupted:
		return fmt.Errorf("import interrupted after %d of %d records; run the same command to resume", doneRecords, len(items))
	case len(sum.Rejected) > 0:
		return fmt.Errorf("%d records rejected (lines listed above)", len(sum.Rejected))
	}
	return nil
}

// sendWithRetries sends one batch, retrying while the answer may be lost: re-sending an
// item only re-registers it under the same key, so a retry never duplicates.
// place is asked again at every attempt, so that a resent batch reports what has been
// answered since.
func sendWithRetries(ctx context.Context, cl *client, items []importItem, place func() *locator.BatchSequence, send batchSender) ([]importResult, error) {
	var lastErr error
	for attempt := 0; attempt < 6; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
			}
		}
		results, err := send(ctx, cl, items, place())
		if err == nil {
			return results, nil
		}
		lastErr = err
		if ctx.Err() != nil || isClientError(err) {
			return nil, err
		}
	}
	return nil, lastErr
}

func sendDocuments(ctx context.Context, cl *client, items []importItem, _ *locator.BatchSequence) ([]importResult, error) {
	var req locator.DocumentBatchRequest
	for _, it := range items {
		req.Documents = append(req.Documents, it.raw)
	}
	data, _, err := cl.do(ctx, http.MethodPost, "/v1/documents/batch", req, nil)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Results []locator.DocumentBatchResult `json:"results"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("unreadable batch answer: %w", err)
	}
	if len(resp.Results) != len(items) {
		return nil, fmt.Errorf("batch answer has %d results for %d documents", len(resp.Results), len(items))
	}
	out := make([]importResult, len(items))
	for i, r := range resp.Results {
		outcome := "registered"
		if r.Version > 1 {
			outcome = "updated"
		}
		out[i] = importResult{Key: r.ID, Outcome: outcome, Status: r.Status, Error: r.Error}
	}
	return out, nil
}

// sendPatients registers one batch of patients.
func sendPatients(ctx context.Context, cl *client, items []importItem, seq *locator.BatchSequence) ([]importResult, error) {
	req := locator.BatchRequest{Sequence: seq}
	var order []int // request order → item index (records first, then patients)
	for i, it := range items {
		if it.record != nil {
			req.Records = append(req.Records, *it.record)
			order = append(order, i)
		}
	}
	for i, it := range items {
		if it.raw != nil {
			req.Patients = append(req.Patients, it.raw)
			order = append(order, i)
		}
	}
	data, _, err := cl.do(ctx, http.MethodPost, "/v1/patients/batch", req, nil)
	if err != nil {
		return nil, err
	}
	var resp locator.BatchResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("unreadable batch answer: %w", err)
	}
	if len(resp.Results) != len(items) {
		return nil, fmt.Errorf("batch answer has %d results for %d records", len(resp.Results), len(items))
	}
	out := make([]importResult, len(items))
	for k, res := range resp.Results {
		out[order[k]] = importResult{Key: res.Record, Outcome: res.Outcome, EUID: res.EUID, Status: res.Status, Error: res.Error}
	}
	return out, nil
}

// isClientError reports a 4xx answer: the request itself is wrong and a retry cannot help.
func isClientError(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status >= 400 && se.Status < 500
}

// loadImport reads the items of a file; malformed rows are returned apart, with their
// line numbers, to be reported in the summary.
func loadImport(path, format, system string) ([]importItem, []rejectedLine, error) {
	if format == "" {
		format = "csv"
		if strings.HasSuffix(path, ".ndjson") {
			format = "ndjson"
		}
	}
	var items []importItem
	var malformed []rejectedLine
	switch format {
	case "ndjson":
		if system != "" {
			return nil, nil, errors.New("-system applies to csv and febrl files; an NDJSON Patient carries its identifiers")
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" {
				continue
			}
			if !json.Valid([]byte(text)) {
				malformed = append(malformed, rejectedLine{Line: line, Error: "not a JSON object"})
				continue
			}
			items = append(items, importItem{line: line, raw: json.RawMessage(text)})
		}
		if err := sc.Err(); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", path, err)
		}
	default:
		f, err := dataset.ParseFormat(format)
		if err != nil {
			return nil, nil, err
		}
		file, err := dataset.LoadLenient(path, f)
		if err != nil {
			return nil, nil, err
		}
		for _, re := range file.Rejected {
			malformed = append(malformed, rejectedLine{Line: re.Line, Error: re.Err.Error()})
		}
		for _, row := range file.Rows {
			r := row.Record
			if system != "" {
				r.System = system
			}
			rec := command.PatientRecord{System: r.System, Value: r.Value, Given: r.Given, Family: r.Family, Suffix: r.Suffix,
				BirthDate: r.BirthDate, Sex: r.Sex, AddressLines: r.AddressLines, City: r.City, State: r.State,
				PostalCode: r.PostalCode, Phones: r.Phones, Email: r.Email, SSN: r.SSN}
			items = append(items, importItem{line: row.Line, record: &rec})
		}
	}
	if len(items) == 0 && len(malformed) == 0 {
		return nil, nil, fmt.Errorf("%s holds no records", path)
	}
	return items, malformed, nil
}

func readCheckpoint(path string) (checkpoint, error) {
	var cp checkpoint
	b, err := os.ReadFile(path)
	if err != nil {
		return cp, err
	}
	return cp, json.Unmarshal(b, &cp)
}

// saveCheckpoint writes the progress file atomically (a crash mid-write leaves the old one).
func saveCheckpoint(path string, cp checkpoint) {
	b, _ := json.Marshal(cp)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		os.Rename(tmp, path)
	}
}

// importProgress is a progress bar with rate and ETA on a terminal, and a plain line every
// few seconds otherwise (logs, CI).
type importProgress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	total int
	done  int
	start time.Time
	last  time.Time
	mu    sync.Mutex
}

func newImportProgress(w io.Writer, total int) *importProgress {
	p := &importProgress{w: w, total: total, start: time.Now(), last: time.Now()}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond))
	}
	return p
}

func (p *importProgress) add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.bar != nil {
		p.bar.Add(n)
		return
	}
	if time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		rate := float64(p.done) / time.Since(p.start).Seconds()
		eta := time.Duration(float64(p.total-p.done)/rate) * time.Second
		fmt.Fprintf(p.w, "imported %d/%d records (%.0f records/s, about %s left)\n", p.done, p.total, rate, eta.Round(time.Second))
	}
}

func (p *importProgress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

func printImportSummary(w io.Writer, s importSummary) error {
	fmt.Fprintf(w, "%s: %d records", s.File, s.Records)
	if s.Skipped > 0 {
		fmt.Fprintf(w, " (%d already imported, skipped)", s.Skipped)
	}
	fmt.Fprintf(w, " in %.1fs, %.0f records/s\n", s.Seconds, s.RecordsPerSec)
	var parts []string
	for _, outcome := range slices.Sorted(maps.Keys(s.Outcomes)) {
		parts = append(parts, fmt.Sprintf("%s %d", outcome, s.Outcomes[outcome]))
	}
	fmt.Fprintf(w, "  %s   rejected %d\n", strings.Join(append(parts, ""), "   "), len(s.Rejected))
	for i, r := range s.Rejected {
		if i == 20 {
			fmt.Fprintf(w, "  … %d more rejected (see -output json)\n", len(s.Rejected)-20)
			break
		}
		fmt.Fprintf(w, "  line %d %s: %s\n", r.Line, r.Record, r.Error)
	}
	return nil
}
