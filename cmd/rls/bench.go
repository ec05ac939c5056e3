package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/mpi/synth"
	"github.com/rls-hie/rls/raft/command"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure rls on this machine",
		Subcommands: []*cli.Command{{
			Name:  "import",
			Usage: "the in-memory matcher against the replicated import of the same file, on local clusters",
			Description: "Generates a population (-persons, -seed; mpi/synth, as `rls mpi synth`) or reads FILE (csv),\n" +
				"registers it in file order with the in-memory matcher (what `rls mpi eval` measures), then starts\n" +
				"a local cluster of each size in -nodes (`rls agent` processes of this binary, on loopback, in\n" +
				"-dir), imports the file through its leader in batches (as `rls import patients` does) and\n" +
				"compares. Prints JSON: both rates and their ratio, the rate over each tenth of the file, the\n" +
				"CPU time and major page faults of each node, the time the leader's state machine spent\n" +
				"applying and committing (its serial path), how many records each node registered with the\n" +
				"leader's matching decision instead of matching them itself, peak RSS per node, whether the\n" +
				"cluster formed the same persons as the in-memory run (the batches in flight are numbered in\n" +
				"one import stream, so the leader proposes them in file order), and the latency of $match and\n" +
				"/v1/locate at -clients concurrent clients once every node has written the import to its\n" +
				"state file.\n" +
				"With -runs N the whole measurement is repeated N times and \"medians\" gives, per cluster size,\n" +
				"the median rate and the median of the ratios (each against the in-memory run of its round).\n" +
				"Records the API refuses (a birth date in the future) are left out of both runs. The machine's\n" +
				"load average is reported: other work on the machine slows every figure.",
			ArgsUsage: "[FILE]",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "persons", Value: 20000, Usage: "generate a population of this many persons (without FILE)"},
				&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "population seed"},
				&cli.StringFlag{Name: "nodes", Value: "1,3", Usage: "comma-separated cluster sizes to measure"},
				&cli.IntFlag{Name: "batch", Value: 500, Usage: "records per batch"},
				&cli.IntFlag{Name: "parallel", Value: 4, Usage: "batches in flight (the leader proposes them in file order all the same)"},
				&cli.IntFlag{Name: "queries", Value: 2000, Usage: "$match and /v1/locate requests each, after the import (0: none)"},
				&cli.IntFlag{Name: "clients", Value: 16, Usage: "concurrent clients for the queries"},
				&cli.IntFlag{Name: "runs", Value: 1, Usage: "measure `N` times (the in-memory run, then each cluster size, fresh each time) and report the medians"},
				&cli.StringFlag{Name: "dir", Usage: "working directory (default: a new temporary one, removed at the end)"},
				&cli.BoolFlag{Name: "keep", Usage: "keep the working directory (population file, node data and logs)"},
				&cli.StringFlag{Name: "heapprofile", Usage: "after each import, write a heap profile of every node to `PREFIX`-N-ID.pprof"},
				&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of each leader over the first 15 s of its import to `PREFIX`-N.pprof, and of each follower to PREFIX-N-ID.pprof"},
				&cli.StringFlag{Name: "querycpuprofile", Usage: "write a CPU profile of every node over the first 10 s of the queries after the import to `PREFIX`-N-ID.pprof"},
				&cli.StringFlag{Name: "node-memory-limit", Usage: "the nodes' Go memory limit (`GOMEMLIMIT`, e.g. 4GiB; the bench's own is left as it is): the collector works harder as a node's heap nears it"},
			},
			Action: benchImport,
		}},
	}
}

// benchReport is what `rls bench import` prints.
type benchReport struct {
	File     string `json:"file"`
	Persons  int    `json:"persons,omitempty"`
	Seed     uint64 `json:"seed,omitempty"`
	Records  int    `json:"records"`
	Refused  int    `json:"refused"`
	CPUs     int    `json:"cpus"`
	Batch    int    `json:"batch"`
	Parallel int    `json:"parallel"`
	// LoadBefore is /proc/loadavg (1, 5 and 15 minutes) when the run began.
	LoadBefore []float64      `json:"load_before"`
	InMemory   benchInMemory  `json:"in_memory"`
	Clusters   []benchCluster `json:"clusters"`
	// Rounds holds every round of a measurement repeated with -runs (the first is also
	// InMemory and Clusters); Medians summarises them per cluster size.
	Rounds  []benchRound  `json:"rounds,omitempty"`
	Medians []benchMedian `json:"medians,omitempty"`
}

// benchRound is one in-memory run and the cluster imports compared with it.
type benchRound struct {
	InMemory benchInMemory  `json:"in_memory"`
	Clusters []benchCluster `json:"clusters"`
}

// benchMedian is the median over the rounds for one cluster size.
type benchMedian struct {
	Nodes                    int       `json:"nodes"`
	Rounds                   int       `json:"rounds"`
	InMemoryRecordsPerSecond float64   `json:"in_memory_records_per_second"`
	RecordsPerSecond         float64   `json:"records_per_second"`
	Ratio                    float64   `json:"ratio"`
	Ratios                   []float64 `json:"ratios"`
	SamePersons              bool      `json:"same_persons_every_round"`
}

type benchInMemory struct {
	Seconds          float64 `json:"seconds"`
	RecordsPerSecond float64 `json:"records_per_second"`
	// CPUSeconds is the CPU time the run took (user and system); RecordsPerCPUSecond the
	// rate per second of it, which other work on a shared machine changes far less than
	// the rate per second of wall time.
	CPUSeconds          float64        `json:"cpu_seconds,omitempty"`
	RecordsPerCPUSecond float64        `json:"records_per_cpu_second,omitempty"`
	Outcomes            map[string]int `json:"outcomes"`
	ReviewItems         int            `json:"review_items"`
	// Tenths and LastToFirst as for a cluster: how much of a cluster's slowing down over
	// the file is the matcher's own (larger blocks as the index grows).
	Tenths      []float64 `json:"tenths_records_per_second"`
	LastToFirst float64   `json:"last_to_first"`
	Load        []float64 `json:"load_after"`
}

type benchCluster struct {
	Nodes            int     `json:"nodes"`
	Seconds          float64 `json:"seconds"`
	RecordsPerSecond float64 `json:"records_per_second"`
	// Ratio is RecordsPerSecond over the in-memory rate.
	Ratio float64 `json:"ratio"`
	// Tenths is the rate over each successive tenth of the file; LastToFirst the last over
	// the first.
	Tenths      []float64 `json:"tenths_records_per_second"`
	LastToFirst float64   `json:"last_to_first"`
	// CPUSeconds is each node's CPU time (user and system) from the start of the import
	// until every node had applied it. LeaderRecordsPerCPUSecond is the records over the
	// leader's, and CPURatio that over the in-memory run's records per CPU second: the
	// cost of a replicated registration against the matcher alone, whatever else the
	// machine was doing. ClusterRecordsPerCPUSecond divides by the sum over the nodes.
	CPUSeconds                 []float64 `json:"cpu_seconds,omitempty"`
	LeaderRecordsPerCPUSecond  float64   `json:"leader_records_per_cpu_second,omitempty"`
	ClusterRecordsPerCPUSecond float64   `json:"cluster_records_per_cpu_second,omitempty"`
	CPURatio                   float64   `json:"cpu_ratio,omitempty"`
	// MajorFaults is each node's page faults that read from disk over the same span: a
	// node short of memory for its state file's pages reads them back for every flush.
	MajorFaults []uint64 `json:"major_page_faults,omitempty"`
	// LeaderApplySeconds is the wall time the leader's state machine spent applying the
	// import's batches, LeaderCommitSeconds that of its commits (making applied entries
	// visible) and LeaderFlushSeconds that of its flushes to the state file, beside Apply
	// (from its metrics): the serial path that bounds the rate when the CPUs are not all
	// busy.
	LeaderApplySeconds  float64 `json:"leader_apply_seconds,omitempty"`
	LeaderCommitSeconds float64 `json:"leader_commit_seconds,omitempty"`
	LeaderFlushSeconds  float64 `json:"leader_flush_seconds,omitempty"`
	// SettleSeconds is how long after every node had applied the import the last one had
	// also written it to its state file (rls_fsm_unflushed_transactions 0 on every node);
	// the queries start then, on nodes no longer flushing the import.
	SettleSeconds float64 `json:"settle_seconds"`
	// DecidedByLeader is, for each node, the records it registered with the leader's
	// matching decision instead of matching them itself (see fsm.DecisionSource).
	DecidedByLeader []float64      `json:"registrations_decided_by_leader,omitempty"`
	Outcomes        map[string]int `json:"outcomes"`
	// Resent counts batches sent again after an error (a timeout, a 503, a lost leader):
	// a batch that had been applied is registered again, and its records may then be
	// grouped otherwise than in one pass in file order.
	Resent   int `json:"resent_batches"`
	Rejected int `json:"rejected"`
	// SamePersons: every record is grouped with the same records as in the in-memory run;
	// DifferentRecords counts those that are not.
	SamePersons      bool `json:"same_persons"`
	DifferentRecords int  `json:"different_records"`
	// PeakRSS is each node's VmHWM (peak resident set, file pages of the state file's
	// memory map included); RSSAnon and RSSFile split its resident set at the end.
	PeakRSS []int64        `json:"peak_rss_bytes"`
	RSSAnon []int64        `json:"rss_anon_bytes_at_end"`
	RSSFile []int64        `json:"rss_file_bytes_at_end"`
	Match   *benchLatency  `json:"match,omitempty"`
	Locate  *benchLatency  `json:"locate,omitempty"`
	Load    []float64      `json:"load_after"`
	Profile string         `json:"cpu_profile,omitempty"`
	Errors  map[string]int `json:"query_errors,omitempty"`
}

type benchLatency struct {
	Requests int            `json:"requests"`
	Clients  int            `json:"clients"`
	P50Ms    float64        `json:"p50_ms"`
	P99Ms    float64        `json:"p99_ms"`
	MaxMs    float64        `json:"max_ms"`
	Statuses map[string]int `json:"statuses"`
	// Server is the same requests timed by the nodes, from arrival to the last byte of the
	// answer, and AuditWait the part of it spent waiting for the audit entry to commit
	// (both read from the nodes' histograms, whose buckets double from 0.5 ms: quantiles
	// are interpolated within a bucket). What the clients measure beyond Server is time
	// in queues and on the wire.
	Server    *benchQuantiles `json:"server,omitempty"`
	AuditWait *benchQuantiles `json:"audit_wait,omitempty"`
	// RaftApply is the Raft round of each command the leader proposed meanwhile (the audit
	// batches), from proposal to its application; AuditWait beyond it is time a request
	// waited for a batch to take its entry.
	RaftApply *benchQuantiles `json:"raft_apply,omitempty"`
}

// benchQuantiles are quantiles read from histograms.
type benchQuantiles struct {
	Count float64 `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

const benchToken = "rls_bench0123456789abcdef0123456789abcdef0123"

func benchImport(c *cli.Context) error {
	sizes, err := parseNodeCounts(c.String("nodes"))
	if err != nil {
		return err
	}
	batch, parallel := c.Int("batch"), c.Int("parallel")
	if batch < 1 || batch > locator.MaxBatchRecords || parallel < 1 || parallel > 64 {
		return fmt.Errorf("-batch must be 1..%d and -parallel 1..64", locator.MaxBatchRecords)
	}
	if l := c.String("node-memory-limit"); l != "" && !validMemoryLimit(l) {
		return fmt.Errorf("-node-memory-limit %q: want a number of bytes with an optional unit B, KiB, MiB, GiB or TiB (as GOMEMLIMIT), e.g. 4GiB", l)
	}
	dir := c.String("dir")
	if dir == "" {
		if dir, err = os.MkdirTemp("", "rls-bench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if !c.Bool("keep") {
		defer os.RemoveAll(dir)
	}
	rep := benchReport{CPUs: runtime.NumCPU(), Batch: batch, Parallel: parallel, LoadBefore: loadAverage()}
	progress := func(format string, args ...any) { fmt.Fprintf(c.App.ErrWriter, "bench: "+format+"\n", args...) }

	path := c.Args().First()
	if path == "" {
		rep.Persons, rep.Seed = c.Int("persons"), c.Uint64("seed")
		path = filepath.Join(dir, fmt.Sprintf("population-%d-seed%d.csv", rep.Persons, rep.Seed))
		progress("generating %d persons (seed %d) into %s", rep.Persons, rep.Seed, path)
		if err := writePopulation(c.Context, path, rep.Persons, rep.Seed); err != nil {
			return err
		}
	}
	rep.File = path
	file, err := dataset.Load(path, dataset.CSV)
	if err != nil {
		return err
	}
	// The API refuses records beyond its limits; neither run registers them.
	now := time.Now().UTC()
	var rows []dataset.Row
	for _, row := range file.Rows {
		rec := benchRecord(row.Record)
		if rec.Check("", now) != nil {
			rep.Refused++
			continue
		}
		rows = append(rows, row)
	}
	rep.Records = len(rows)

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	runs := c.Int("runs")
	if runs < 1 {
		return errors.New("-runs must be 1 or more")
	}
	for round := 1; round <= runs; round++ {
		progress("round %d of %d: in-memory matcher, %d records", round, runs, len(rows))
		mem, personOf, err := benchInMemoryRun(c.Context, rows)
		if err != nil {
			return err
		}
		mem.Load = loadAverage()
		progress("in-memory: %.0f records/s", mem.RecordsPerSecond)
		// The in-memory index is garbage now; hand its pages back before the nodes start, or
		// the bench keeps its peak (6 GiB at a million persons) beside them for minutes.
		debug.FreeOSMemory()
		r := benchRound{InMemory: mem}
		for _, n := range sizes {
			progress("%d node(s): starting", n)
			opts := benchClusterOptions{
				exe: exe, dir: filepath.Join(dir, fmt.Sprintf("cluster-%d", n)), nodes: n, rows: rows, batch: batch, parallel: parallel,
				queries: c.Int("queries"), clients: c.Int("clients"), personOf: personOf, progress: progress,
				memoryLimit: c.String("node-memory-limit"),
			}
			if round == 1 {
				opts.profile, opts.heapProfile = profilePath(c.String("cpuprofile"), n), profilePath(c.String("heapprofile"), n)
				opts.queryProfile = profilePath(c.String("querycpuprofile"), n)
			} else {
				opts.dir = filepath.Join(dir, fmt.Sprintf("cluster-%d-round%d", n, round))
			}
			res, err := benchCluster1(c.Context, opts)
			if err != nil {
				return fmt.Errorf("%d-node cluster: %w", n, err)
			}
			res.Ratio = round3(res.RecordsPerSecond / mem.RecordsPerSecond)
			if res.LeaderRecordsPerCPUSecond > 0 && mem.RecordsPerCPUSecond > 0 {
				res.CPURatio = round3(res.LeaderRecordsPerCPUSecond / mem.RecordsPerCPUSecond)
			}
			r.Clusters = append(r.Clusters, res)
			progress("%d node(s): %.0f records/s (%.2f of in-memory); %.0f records per leader CPU second (%.2f of in-memory)",
				n, res.RecordsPerSecond, res.Ratio, res.LeaderRecordsPerCPUSecond, res.CPURatio)
		}
		if round == 1 {
			rep.InMemory, rep.Clusters = r.InMemory, r.Clusters
		}
		if runs > 1 {
			rep.Rounds = append(rep.Rounds, r)
		}
	}
	if runs > 1 {
		rep.Medians = benchMedians(sizes, rep.Rounds)
	}
	return printJSON(c.App.Writer, rep)
}

// benchMedians summarises the rounds per cluster size.
func benchMedians(sizes []int, rounds []benchRound) []benchMedian {
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	var out []benchMedian
	for i, n := range sizes {
		m := benchMedian{Nodes: n, Rounds: len(rounds), SamePersons: true}
		var mem, rate []float64
		for _, r := range rounds {
			mem, rate = append(mem, r.InMemory.RecordsPerSecond), append(rate, r.Clusters[i].RecordsPerSecond)
			m.Ratios = append(m.Ratios, r.Clusters[i].Ratio)
			m.SamePersons = m.SamePersons && r.Clusters[i].SamePersons
		}
		m.InMemoryRecordsPerSecond, m.RecordsPerSecond, m.Ratio = median(mem), median(rate), round3(median(m.Ratios))
		out = append(out, m)
	}
	return out
}

func profilePath(prefix string, nodes int) string {
	if prefix == "" {
		return ""
	}
	return fmt.Sprintf("%s-%d.pprof", prefix, nodes)
}

func parseNodeCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 9 {
			return nil, fmt.Errorf("-nodes %q: each size must be 1 to 9", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func writePopulation(ctx context.Context, path string, persons int, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = synth.Write(ctx, f, synth.Options{Persons: persons, Seed: seed, Knobs: synth.DefaultKnobs()})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func benchRecord(r mpi.Record) command.PatientRecord {
	return command.PatientRecord{System: r.System, Value: r.Value, Given: r.Given, Family: r.Family, Suffix: r.Suffix,
		BirthDate: r.BirthDate, Sex: r.Sex, AddressLines: r.AddressLines, City: r.City, State: r.State,
		PostalCode: r.PostalCode, Phones: r.Phones, Email: r.Email, SSN: r.SSN}
}

// benchInMemoryRun registers the rows in order into an mpi.MemStore with the default
// configuration, exactly as `rls mpi eval` does, and returns the figures and each record's
// person.
func benchInMemoryRun(ctx context.Context, rows []dataset.Row) (benchInMemory, map[mpi.RecordKey]string, error) {
	store, m := mpi.NewMemStore(), mpi.NewMatcher()
	out := benchInMemory{Outcomes: map[string]int{}}
	personOf := make(map[mpi.RecordKey]string, len(rows))
	cpuStart, cpuOK := procCPU(os.Getpid())
	start := time.Now()
	points := []progressPoint{{0, start}}
	for i, row := range rows {
		if i%4096 == 0 && ctx.Err() != nil {
			return out, nil, ctx.Err()
		}
		if i > 0 && i%256 == 0 {
			points = append(points, progressPoint{i, time.Now()})
		}
		d, err := m.Register(store, row.Record, fmt.Sprintf("E%09d", i+1))
		if err != nil {
			return out, nil, fmt.Errorf("line %d: %w", row.Line, err)
		}
		out.Outcomes[string(d.Outcome)]++
		personOf[d.Record] = d.EUID
	}
	points = append(points, progressPoint{len(rows), time.Now()})
	out.Tenths, out.LastToFirst = tenthRates(points, len(rows))
	out.Seconds = round3(time.Since(start).Seconds())
	out.RecordsPerSecond = math.Round(float64(len(rows)) / time.Since(start).Seconds())
	if cpuEnd, ok := procCPU(os.Getpid()); ok && cpuOK && cpuEnd > cpuStart {
		out.CPUSeconds = round3((cpuEnd - cpuStart).Seconds())
		out.RecordsPerCPUSecond = math.Round(float64(len(rows)) / (cpuEnd - cpuStart).Seconds())
	}
	out.ReviewItems = len(store.Reviews())
	return out, personOf, nil
}

type benchClusterOptions struct {
	exe, dir        string
	nodes           int
	rows            []dataset.Row
	batch, parallel int
	queries         int
	clients         int
	personOf        map[mpi.RecordKey]string
	progress        func(string, ...any)
	profile         string
	heapProfile     string
	queryProfile    string
	// memoryLimit, when set, is the nodes' GOMEMLIMIT.
	memoryLimit string
}

// benchNode is one `rls agent` process of a bench cluster.
type benchNode struct {
	id, dir, httpAddr, raftAddr string
	cmd                         *exec.Cmd
	exited                      chan struct{}
}

func (n *benchNode) url() string { return "http://" + n.httpAddr }

// benchCluster1 starts a cluster of opts.nodes nodes, imports the rows through its leader
// and measures the queries, then stops it.
func benchCluster1(ctx context.Context, opts benchClusterOptions) (benchCluster, error) {
	res := benchCluster{Nodes: opts.nodes, Outcomes: map[string]int{}}
	if err := os.MkdirAll(opts.dir, 0o700); err != nil {
		return res, err
	}
	tokenFile := filepath.Join(opts.dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(benchToken+"\n"), 0o600); err != nil {
		return res, err
	}
	ports, err := freeLoopbackAddrs(2 * opts.nodes)
	if err != nil {
		return res, err
	}
	nodes := make([]*benchNode, opts.nodes)
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.stop()
			}
		}
	}()
	admin := &client{token: benchToken, purpose: "TREAT", http: newRetryClient(), timeout: 5 * time.Minute}
	// The queries afterwards measure latency, not the per-participant and per-address rate
	// limits an operator sets for production (16 clients of one address would meet them).
	configFile := filepath.Join(opts.dir, "bench.hcl")
	if err := os.WriteFile(configFile, []byte("privacy {\n  rate_limit = -1\n  address_rate_limit = -1\n}\n"), 0o600); err != nil {
		return res, err
	}
	for i := range nodes {
		n := &benchNode{id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(opts.dir, fmt.Sprintf("n%d", i+1)), httpAddr: ports[2*i], raftAddr: ports[2*i+1]}
		args := []string{"agent", "-node-id", n.id, "-data-dir", n.dir, "-http-addr", n.httpAddr, "-raft-addr", n.raftAddr,
			"-admin-token-file", tokenFile, "-log-level", "warn", "-config", configFile}
		if i == 0 {
			args = append(args, "-bootstrap")
		} else {
			args = append(args, "-join", nodes[0].url())
		}
		if err := n.start(opts.exe, args, opts.memoryLimit); err != nil {
			return res, err
		}
		nodes[i] = n
		if err := waitFor(ctx, 60*time.Second, func() bool { return clusterHas(ctx, admin, nodes[0], i+1) }); err != nil {
			return res, fmt.Errorf("node %s did not join: %w (see %s.log)", n.id, err, n.dir)
		}
	}
	leader, err := leaderOf(ctx, admin, nodes)
	if err != nil {
		return res, err
	}
	lc := *admin
	lc.base = leader.url()
	if err := addBenchParticipants(ctx, &lc, opts.rows); err != nil {
		return res, err
	}

	var profileDone chan error
	if opts.profile != "" {
		// The leader's profile under the name asked for, each follower's beside it.
		profileDone = make(chan error, len(nodes))
		for _, n := range nodes {
			nc, path := *admin, opts.profile
			nc.base = n.url()
			if n != leader {
				path = nodeProfilePath(path, n.id)
			}
			go func() { profileDone <- fetchProfile(ctx, &nc, path, 15) }()
		}
	}
	opts.progress("%d node(s): importing %d records through %s", opts.nodes, len(opts.rows), leader.id)
	cpuStart := make([]time.Duration, len(nodes))
	faultsStart := make([]uint64, len(nodes))
	for i, n := range nodes {
		cpuStart[i], _ = procCPU(n.cmd.Process.Pid)
		faultsStart[i], _ = procMajorFaults(n.cmd.Process.Pid)
	}
	before := fsmMetrics(ctx, &lc)
	personOf, err := benchImportRows(ctx, &lc, opts, &res)
	if err != nil {
		return res, err
	}
	if after := fsmMetrics(ctx, &lc); after.apply > 0 {
		res.LeaderApplySeconds, res.LeaderCommitSeconds = round3(after.apply-before.apply), round3(after.commit-before.commit)
		res.LeaderFlushSeconds = round3(after.flush - before.flush)
	}
	if profileDone != nil {
		res.Profile = opts.profile
		for range nodes {
			if err := <-profileDone; err != nil {
				opts.progress("cpu profile: %v", err)
				res.Profile = ""
			}
		}
	}
	if opts.heapProfile != "" {
		// Where each node's memory goes once the file is in (after a collection).
		for _, n := range nodes {
			nc := *admin
			nc.base = n.url()
			path := nodeProfilePath(opts.heapProfile, n.id)
			data, _, err := nc.do(ctx, http.MethodGet, "/debug/pprof/heap?gc=1", nil, nil)
			if err == nil {
				err = os.WriteFile(path, data, 0o600)
			}
			if err != nil {
				opts.progress("heap profile of %s: %v", n.id, err)
			}
		}
	}
	res.SamePersons, res.DifferentRecords = samePartition(opts.personOf, personOf)

	if err := waitFor(ctx, 5*time.Minute, func() bool { return caughtUp(ctx, admin, nodes) }); err != nil {
		return res, fmt.Errorf("nodes did not catch up after the import: %w", err)
	}
	for i, n := range nodes {
		end, ok := procMajorFaults(n.cmd.Process.Pid)
		if !ok {
			res.MajorFaults = nil // one per node or none, as CPUSeconds
			break
		}
		res.MajorFaults = append(res.MajorFaults, end-faultsStart[i])
	}
	var clusterCPU time.Duration
	for i, n := range nodes {
		end, ok := procCPU(n.cmd.Process.Pid)
		if !ok || end <= cpuStart[i] {
			res.CPUSeconds = nil
			break
		}
		used := end - cpuStart[i]
		clusterCPU += used
		res.CPUSeconds = append(res.CPUSeconds, round3(used.Seconds()))
		if n == leader {
			res.LeaderRecordsPerCPUSecond = math.Round(float64(len(opts.rows)) / used.Seconds())
		}
	}
	if res.CPUSeconds != nil {
		res.ClusterRecordsPerCPUSecond = math.Round(float64(len(opts.rows)) / clusterCPU.Seconds())
	}
	for _, n := range nodes {
		nc := *admin
		nc.base = n.url()
		res.DecidedByLeader = append(res.DecidedByLeader, fsmMetrics(ctx, &nc).decidedByLeader)
	}
	settling := time.Now()
	if err := waitFor(ctx, 10*time.Minute, func() bool { return allFlushed(ctx, admin, nodes) }); err != nil {
		return res, fmt.Errorf("nodes did not write the import to their state files: %w", err)
	}
	res.SettleSeconds = round3(time.Since(settling).Seconds())
	if opts.queries > 0 {
		opts.progress("%d node(s): %d $match and %d locate requests at %d clients", opts.nodes, opts.queries, opts.queries, opts.clients)
		var profiles chan error
		if opts.queryProfile != "" {
			profiles = make(chan error, len(nodes))
			for _, n := range nodes {
				nc := *admin
				nc.base = n.url()
				path := nodeProfilePath(opts.queryProfile, n.id)
				go func() { profiles <- fetchProfile(ctx, &nc, path, 10) }()
			}
		}
		res.Match, res.Locate, res.Errors = benchQueries(ctx, admin, nodes, opts)
		for range cap(profiles) {
			if err := <-profiles; err != nil {
				opts.progress("query CPU profile: %v", err)
			}
		}
	}
	for _, n := range nodes {
		hwm, anon, file := procMemory(n.cmd.Process.Pid)
		res.PeakRSS, res.RSSAnon, res.RSSFile = append(res.PeakRSS, hwm), append(res.RSSAnon, anon), append(res.RSSFile, file)
	}
	res.Load = loadAverage()
	return res, nil
}

// metricSamples yields the samples of a node's metrics in the Prometheus text format: each
// series (name and labels) with its value. Comments and lines without a number are skipped.
func metricSamples(data []byte) iter.Seq2[string, float64] {
	return func(yield func(string, float64) bool) {
		for line := range strings.Lines(string(data)) {
			series, value, ok := strings.Cut(strings.TrimSpace(line), " ")
			if !ok || strings.HasPrefix(series, "#") {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				continue
			}
			if !yield(series, v) {
				return
			}
		}
	}
}

// stateMachineMetrics are the totals of a node's state machine: the seconds it spent
// applying, committing and flushing, and the records it registered with the leader's
// matching decision.
type stateMachineMetrics struct {
	apply, commit, flush, decidedByLeader float64
	// unflushed is -1 when the node did not report it.
	unflushed float64
}

// fsmMetrics reads a node's stateMachineMetrics from its metrics (zeros if it cannot).
func fsmMetrics(ctx context.Context, cl *client) stateMachineMetrics {
	t := stateMachineMetrics{unflushed: -1}
	data, _, err := cl.do(ctx, http.MethodGet, "/metrics", nil, nil)
	if err != nil {
		return t
	}
	for name, v := range metricSamples(data) {
		switch name {
		case "rls_fsm_batch_duration_seconds_sum":
			t.apply = v
		case "rls_fsm_commit_duration_seconds_sum":
			t.commit = v
		case "rls_fsm_flush_duration_seconds_sum":
			t.flush = v
		case `rls_fsm_registrations_total{decided_by="leader"}`:
			t.decidedByLeader = v
		case "rls_fsm_unflushed_transactions":
			t.unflushed = v
		}
	}
	return t
}

// allFlushed reports whether every node has written every committed transaction to its
// state file.
func allFlushed(ctx context.Context, admin *client, nodes []*benchNode) bool {
	for _, n := range nodes {
		nc := *admin
		nc.base = n.url()
		if fsmMetrics(ctx, &nc).unflushed != 0 {
			return false
		}
	}
	return true
}

// validMemoryLimit reports whether s is a GOMEMLIMIT the Go runtime accepts (a malformed one
// stops a node at start).
func validMemoryLimit(s string) bool {
	digits := strings.TrimRight(s, "BKMGTi")
	unit := s[len(digits):]
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return false
	}
	return slices.Contains([]string{"", "B", "KiB", "MiB", "GiB", "TiB"}, unit)
}

func (n *benchNode) start(exe string, args []string, memoryLimit string) error {
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return err
	}
	logFile, err := os.Create(n.dir + ".log")
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if memoryLimit != "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+memoryLimit)
	}
	// The nodes end with the bench, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", n.id, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(n.exited)
	}()
	return nil
}

// stop asks the node to shut down and kills it if it has not within 30 s.
func (n *benchNode) stop() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

func freeLoopbackAddrs(n int) ([]string, error) {
	out := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("gave up after %s", timeout)
		case <-tick.C:
		}
	}
	return nil
}

func nodeClient(base *client, n *benchNode) *client {
	c := *base
	c.base = n.url()
	return &c
}

func clusterStatusOf(ctx context.Context, cl *client, n *benchNode) (locator.ClusterStatus, error) {
	var st locator.ClusterStatus
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := nodeClient(cl, n).getJSON(ctx, "/v1/cluster/status", &st)
	return st, err
}

// clusterHas reports whether n's configuration has voters voters and a leader.
func clusterHas(ctx context.Context, cl *client, n *benchNode, voters int) bool {
	st, err := clusterStatusOf(ctx, cl, n)
	if err != nil || st.Leader == "" || len(st.Members) != voters {
		return false
	}
	for _, m := range st.Members {
		if m.Suffrage != "voter" || m.Error != "" {
			return false
		}
	}
	return true
}

func leaderOf(ctx context.Context, cl *client, nodes []*benchNode) (*benchNode, error) {
	st, err := clusterStatusOf(ctx, cl, nodes[0])
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.id == st.Leader {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no leader among the nodes (status names %q)", st.Leader)
}

// caughtUp reports whether every node has applied the leader's last committed entry.
func caughtUp(ctx context.Context, cl *client, nodes []*benchNode) bool {
	st, err := clusterStatusOf(ctx, cl, nodes[0])
	if err != nil || len(st.Members) != len(nodes) {
		return false
	}
	var commit uint64
	for _, m := range st.Members {
		commit = max(commit, m.CommitIndex)
	}
	for _, m := range st.Members {
		if m.Error != "" || m.AppliedIndex < commit {
			return false
		}
	}
	return true
}

// addBenchParticipants registers a participant for each identifier system of the rows.
func addBenchParticipants(ctx context.Context, cl *client, rows []dataset.Row) error {
	var systems []string
	for _, r := range rows {
		if !slices.Contains(systems, r.Record.System) {
			systems = append(systems, r.Record.System)
		}
	}
	for i, sys := range systems {
		v := participantView{ID: fmt.Sprintf("bench-%d", i+1), Name: "Bench facility " + strconv.Itoa(i+1), Kind: "hospital",
			Role: "participant", IdentifierSystem: sys, Active: true}
		if _, _, err := cl.do(ctx, http.MethodPost, "/fhir/Organization", organization(v), nil); err != nil {
			return fmt.Errorf("add participant for %s: %w", sys, err)
		}
	}
	return nil
}

// benchImportRows sends the rows in batches, opts.parallel at a time, and fills res with
// the rates; it returns each record's person as the cluster answered.
func benchImportRows(ctx context.Context, cl *client, opts benchClusterOptions, res *benchCluster) (map[mpi.RecordKey]string, error) {
	type job struct {
		seq   int
		items []importItem
	}
	total := len(opts.rows)
	jobs := make(chan job)
	personOf := make(map[mpi.RecordKey]string, total)
	// A file may register one identifier twice (a corrected or reused MRN): its person is
	// the one its last registration in file order got, whichever answer arrives last.
	lineOf := make(map[mpi.RecordKey]int, total)
	var mu sync.Mutex
	var firstErr error
	done := map[int]int{}
	next, prefix := 0, 0
	// points is when the contiguous prefix of the file acknowledged grew, and to what.
	start := time.Now()
	points := []progressPoint{{0, start}}
	stream := newImportStream()
	var wg sync.WaitGroup
	for range opts.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				attempts := 0
				counted := func(ctx context.Context, cl *client, items []importItem, seq *locator.BatchSequence) ([]importResult, error) {
					attempts++
					return sendPatients(ctx, cl, items, seq)
				}
				place := func() *locator.BatchSequence {
					mu.Lock()
					defer mu.Unlock()
					return stream.place(j.seq, next)
				}
				results, err := sendWithRetries(ctx, cl, j.items, place, counted)
				mu.Lock()
				res.Resent += attempts - 1
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				for i, r := range results {
					if r.Error != "" {
						res.Rejected++
						continue
					}
					res.Outcomes[r.Outcome]++
					key := mpi.KeyOf(j.items[i].record.System, j.items[i].record.Value)
					if line, seen := lineOf[key]; !seen || j.items[i].line > line {
						personOf[key], lineOf[key] = r.EUID, j.items[i].line
					}
				}
				done[j.seq] = len(j.items)
				for n, ok := done[next]; ok; n, ok = done[next] {
					delete(done, next)
					next++
					prefix += n
				}
				if prefix > points[len(points)-1].records {
					last := points[len(points)-1]
					now := time.Now()
					points = append(points, progressPoint{prefix, now})
					// A line per tenth of the file: a large import runs for many minutes.
					if tenth := max(total/10, 1); prefix/tenth > last.records/tenth && prefix < total {
						opts.progress("%d node(s): %d of %d records in, %.0f records/s so far", opts.nodes, prefix, total, float64(prefix)/now.Sub(start).Seconds())
					}
				}
				mu.Unlock()
			}
		}()
	}
	seq := 0
feed:
	for i := 0; i < total; i += opts.batch {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		// Each batch's request records are made as it is sent: made for the whole file at
		// once they held about 70 MB at 100,000 persons, beside the nodes, and grow with it.
		rows := opts.rows[i:min(i+opts.batch, total)]
		items := make([]importItem, len(rows))
		for k, row := range rows {
			rec := benchRecord(row.Record)
			items[k] = importItem{line: row.Line, record: &rec}
		}
		select {
		case jobs <- job{seq: seq, items: items}:
			seq++
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	elapsed := time.Since(start)
	res.Seconds = round3(elapsed.Seconds())
	res.RecordsPerSecond = math.Round(float64(total) / elapsed.Seconds())
	res.Tenths, res.LastToFirst = tenthRates(points, total)
	return personOf, nil
}

// progressPoint is how many records of a file were done at a moment.
type progressPoint struct {
	records int
	at      time.Time
}

// tenthRates returns the rate over each successive tenth of a file of total records, from
// the moments its progress passed them (interpolated between points: one point may cover
// more than a tenth of a small file), and the last tenth's rate over the first's.
func tenthRates(points []progressPoint, total int) ([]float64, float64) {
	at := func(records float64) time.Time {
		for i := 1; i < len(points); i++ {
			a, b := points[i-1], points[i]
			if float64(b.records) >= records {
				f := (records - float64(a.records)) / float64(b.records-a.records)
				return a.at.Add(time.Duration(f * float64(b.at.Sub(a.at))))
			}
		}
		return points[len(points)-1].at
	}
	tenth := float64(total) / 10
	var rates []float64
	for k := range 10 {
		d := at(float64(k+1) * tenth).Sub(at(float64(k) * tenth))
		rates = append(rates, math.Round(tenth/d.Seconds()))
	}
	lastToFirst := 0.0
	if rates[0] > 0 {
		lastToFirst = round3(rates[9] / rates[0])
	}
	return rates, lastToFirst
}

// samePartition compares two groupings of records into persons, whatever the EUIDs: each
// record is named by the smallest key of its group.
func samePartition(a, b map[mpi.RecordKey]string) (bool, int) {
	ca, cb := canonicalGroups(a), canonicalGroups(b)
	differ := 0
	for key, g := range ca {
		if h, ok := cb[key]; !ok || h != g {
			differ++
		}
	}
	for key := range cb {
		if _, ok := ca[key]; !ok {
			differ++
		}
	}
	return differ == 0, differ
}

func canonicalGroups(personOf map[mpi.RecordKey]string) map[mpi.RecordKey]mpi.RecordKey {
	smallest := map[string]mpi.RecordKey{}
	for key, p := range personOf {
		if s, ok := smallest[p]; !ok || key < s {
			smallest[p] = key
		}
	}
	out := make(map[mpi.RecordKey]mpi.RecordKey, len(personOf))
	for key, p := range personOf {
		out[key] = smallest[p]
	}
	return out
}

// benchQueries sends opts.queries $match requests, then as many /v1/locate requests, from
// opts.clients concurrent clients spread over the nodes, each for the demographics of a
// record of the file (every k-th), and returns their latencies.
func benchQueries(ctx context.Context, admin *client, nodes []*benchNode, opts benchClusterOptions) (*benchLatency, *benchLatency, map[string]int) {
	rng := rand.New(rand.NewPCG(1, 2))
	picks := make([]dataset.Row, opts.queries)
	for i := range picks {
		picks[i] = opts.rows[rng.IntN(len(opts.rows))]
	}
	errs := map[string]int{}
	var errMu sync.Mutex
	run := func(send func(cl *client, row dataset.Row) (int, error)) *benchLatency {
		lat := &benchLatency{Requests: len(picks), Clients: opts.clients, Statuses: map[string]int{}}
		times := make([]time.Duration, len(picks))
		work := make(chan int)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range opts.clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := nodeClient(admin, nodes[w%len(nodes)])
				for i := range work {
					start := time.Now()
					status, err := send(cl, picks[i])
					times[i] = time.Since(start)
					mu.Lock()
					lat.Statuses[strconv.Itoa(status)]++
					mu.Unlock()
					if err != nil {
						errMu.Lock()
						errs[oneLine(err.Error())]++
						errMu.Unlock()
					}
				}
			}()
		}
		for i := range picks {
			work <- i
		}
		close(work)
		wg.Wait()
		slices.Sort(times)
		ms := func(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }
		lat.P50Ms, lat.P99Ms, lat.MaxMs = ms(times[len(times)/2]), ms(times[len(times)*99/100]), ms(times[len(times)-1])
		return lat
	}
	// timed runs send as run does and adds what the nodes' histograms saw of those requests
	// (the difference of the histograms before and after).
	timed := func(route string, send func(cl *client, row dataset.Row) (int, error)) *benchLatency {
		before := scrapeHistograms(ctx, admin, nodes)
		lat := run(send)
		after := scrapeHistograms(ctx, admin, nodes)
		method, pattern, _ := strings.Cut(route, " ")
		lat.Server = after.since(before, "rls_http_request_duration_seconds_bucket", `method="`+method+`"`, `route="`+pattern+`"`)
		lat.AuditWait = after.since(before, "rls_audit_wait_seconds_bucket")
		lat.RaftApply = after.since(before, "rls_raft_apply_duration_seconds_bucket")
		return lat
	}
	match := timed("POST /fhir/Patient/$match", func(cl *client, row dataset.Row) (int, error) {
		params := map[string]any{"resourceType": "Parameters", "parameter": []any{
			map[string]any{"name": "resource", "resource": benchPatient(row.Record)},
			map[string]any{"name": "count", "valueInteger": 5},
		}}
		return statusOf(cl.do(ctx, http.MethodPost, "/fhir/Patient/$match", params, nil))
	})
	locate := timed("GET /v1/locate", func(cl *client, row dataset.Row) (int, error) {
		q := url.Values{}
		r := row.Record
		q.Set("family", r.Family)
		if len(r.Given) > 0 {
			q.Set("given", r.Given[0])
		}
		q.Set("birthdate", r.BirthDate)
		if r.PostalCode != "" {
			q.Set("postalcode", r.PostalCode)
		}
		q.Set("min_grade", "possible")
		status, err := statusOf(cl.do(ctx, http.MethodGet, "/v1/locate?"+q.Encode(), nil, nil))
		if status == http.StatusNotFound {
			err = nil // nobody matched: an answer, as fast as any
		}
		return status, err
	})
	if len(errs) == 0 {
		errs = nil
	}
	return match, locate, errs
}

// benchHistograms are cumulative histogram bucket counts summed over the nodes: series (the
// metric name and its labels without le) → upper bound → count.
type benchHistograms map[string]map[float64]float64

// scrapeHistograms reads every node's histogram buckets from its metrics (a node that does
// not answer adds nothing).
func scrapeHistograms(ctx context.Context, admin *client, nodes []*benchNode) benchHistograms {
	h := benchHistograms{}
	for _, n := range nodes {
		data, _, err := nodeClient(admin, n).do(ctx, http.MethodGet, "/metrics", nil, nil)
		if err != nil {
			continue
		}
		for series, count := range metricSamples(data) {
			name, labels, hasLabels := strings.Cut(series, "{")
			if !hasLabels || !strings.HasSuffix(name, "_bucket") {
				continue
			}
			var rest []string
			bound := math.NaN()
			for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
				if v, isLE := strings.CutPrefix(l, "le="); isLE {
					bound, _ = strconv.ParseFloat(strings.Trim(v, `"`), 64) // "+Inf" parses as +Inf
					continue
				}
				rest = append(rest, l)
			}
			if math.IsNaN(bound) {
				continue
			}
			key := name + "{" + strings.Join(rest, ",") + "}"
			if h[key] == nil {
				h[key] = map[float64]float64{}
			}
			h[key][bound] += count
		}
	}
	return h
}

// since returns the quantiles of what the histograms named name and carrying every one of
// labels counted after before was read, or nil if they counted nothing.
func (h benchHistograms) since(before benchHistograms, name string, labels ...string) *benchQuantiles {
	buckets := map[float64]float64{}
	for key, counts := range h {
		if !strings.HasPrefix(key, name+"{") || !containsAll(key, labels) {
			continue
		}
		for bound, c := range counts {
			buckets[bound] += c - before[key][bound]
		}
	}
	bounds := slices.Sorted(maps.Keys(buckets))
	if len(bounds) == 0 || buckets[bounds[len(bounds)-1]] <= 0 {
		return nil
	}
	total := buckets[bounds[len(bounds)-1]]
	quantile := func(q float64) float64 {
		rank := q * total
		lower, below := 0.0, 0.0
		for _, b := range bounds {
			if buckets[b] >= rank {
				if math.IsInf(b, 1) {
					return lower // beyond the last bound: report the bound
				}
				return lower + (b-lower)*(rank-below)/(buckets[b]-below)
			}
			lower, below = b, buckets[b]
		}
		return lower
	}
	return &benchQuantiles{Count: total, P50Ms: round3(quantile(0.5) * 1000), P99Ms: round3(quantile(0.99) * 1000)}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func statusOf(_ []byte, _ http.Header, err error) (int, error) {
	var se *statusError
	if errors.As(err, &se) {
		return se.Status, err
	}
	if err != nil {
		return 0, err
	}
	return http.StatusOK, nil
}

// benchPatient is the FHIR Patient of a record's demographics, without its identifier.
func benchPatient(r mpi.Record) map[string]any {
	p := map[string]any{"resourceType": "Patient"}
	name := map[string]any{}
	if r.Family != "" {
		name["family"] = r.Family
	}
	if len(r.Given) > 0 {
		name["given"] = r.Given
	}
	p["name"] = []any{name}
	if r.BirthDate != "" {
		p["birthDate"] = r.BirthDate
	}
	switch strings.ToUpper(r.Sex) {
	case "F":
		p["gender"] = "female"
	case "M":
		p["gender"] = "male"
	}
	addr := map[string]any{}
	if len(r.AddressLines) > 0 {
		addr["line"] = r.AddressLines
	}
	if r.City != "" {
		addr["city"] = r.City
	}
	if r.State != "" {
		addr["state"] = r.State
	}
	if r.PostalCode != "" {
		addr["postalCode"] = r.PostalCode
	}
	if len(addr) > 0 {
		p["address"] = []any{addr}
	}
	var telecom []any
	for _, ph := range r.Phones {
		telecom = append(telecom, map[string]any{"system": "phone", "value": ph})
	}
	if r.Email != "" {
		telecom = append(telecom, map[string]any{"system": "email", "value": r.Email})
	}
	if telecom != nil {
		p["telecom"] = telecom
	}
	return p
}

// nodeProfilePath names one node's profile beside path: PREFIX-N.pprof → PREFIX-N-ID.pprof.
func nodeProfilePath(path, nodeID string) string {
	return strings.TrimSuffix(path, ".pprof") + "-" + nodeID + ".pprof"
}

// fetchProfile writes a CPU profile of the node over the next seconds to path.
func fetchProfile(ctx context.Context, cl *client, path string, seconds int) error {
	data, _, err := cl.do(ctx, http.MethodGet, fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), nil, nil)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// procMemory reads a process's peak resident set (VmHWM) and its resident anonymous and
// file-backed memory now, in bytes (zero where /proc does not say).
func procMemory(pid int) (peak, anon, file int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmHWM":
			peak = kb << 10
		case "RssAnon":
			anon = kb << 10
		case "RssFile":
			file = kb << 10
		}
	}
	return peak, anon, file
}

// clockTicks is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// procCPU reads the CPU time (user and system, all threads) a process has used so far from
// /proc/PID/stat; false where there is no such file.
func procCPU(pid int) (time.Duration, bool) {
	fields, ok := procStat(pid)
	if !ok {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[statUTime], 10, 64)
	stime, err2 := strconv.ParseInt(fields[statSTime], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

// loadAverage reads /proc/loadavg (nil where there is none).
func loadAverage() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var out []float64
	for _, f := range strings.Fields(string(b))[:3] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

func round3(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}
