package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
)

// rlsBinary is the rls binary built once for the whole package by TestMain.
var rlsBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rls-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rlsBinary = filepath.Join(dir, "rls")
	build := exec.Command("go", "build", "-o", rlsBinary, "../cmd/rls")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rls:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminToken = "rls_integration_admin_token"

// Options describes a test cluster. Zero values take the defaults of defaultOptions.
type Options struct {
	// Nodes is how many nodes NewCluster starts: the first bootstraps, the others join it.
	Nodes int
	// Spares are node slots prepared (ports, proxies, data dirs) but not started; AddNode
	// starts one and has it join the cluster.
	Spares int
	// TLS runs the cluster as an HIE would: certificates from `rls tls init`, the API over
	// HTTPS requiring client certificates, and Raft over mutually authenticated TLS.
	TLS bool
	// Proxied routes every Raft connection between two nodes through a fault proxy of its
	// own, one per directed link, which Partition, Heal, Slow and DropConnections act on.
	Proxied bool
	// HL7 gives every node an MLLP listener (Node.HL7Addr) that names senders by MSH-4,
	// and a fast notifier.
	HL7 bool

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	// ExtraHCL is appended to every node's config file (a notify block, for instance).
	ExtraHCL string
}

// setDefaults picks timeouts short enough that a test sees several elections in a few
// seconds, long enough that a loaded 2-core machine does not elect for no reason. The
// heartbeat timeout is well below the election timeout: with hashicorp/raft a follower
// notices a dead leader 1-2 heartbeat timeouts after its last contact, and a failed
// (pre-)vote round waits 1-2 election timeouts before the next, so a new leader is due
// within 2×300 ms + 2×1 s, under the 3 election timeouts scenario 2 allows. (With the
// product's defaults, both 1 s, that worst case is 4 s.)
func (o *Options) setDefaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = 300 * time.Millisecond
	}
	if o.ElectionTimeout == 0 {
		o.ElectionTimeout = time.Second
	}
	if o.LeaderLeaseTimeout == 0 {
		o.LeaderLeaseTimeout = o.HeartbeatTimeout
	}
}

// Node is one slot of a test cluster: an rls process (when started) with its own ports and
// data dir, which outlive the process across restarts.
type Node struct {
	Index    int
	ID       string
	Dir      string // data dir
	HTTPAddr string
	RaftAddr string
	// HL7Addr is the node's MLLP listener (Options.HL7).
	HL7Addr string
	LogPath string
	config  string // HCL file with the raft settings and the peer dial addresses
	scheme  string // http, or https with Options.TLS

	// Guarded by Cluster.mu.
	cmd       *exec.Cmd
	exited    chan struct{}
	stopped   bool // SIGSTOPped
	expectEnd bool // the harness killed or stopped it on purpose
	started   bool // started at least once (it has, or is getting, cluster state)
}

// URL is the node's API base URL.
func (n *Node) URL() string { return n.scheme + "://" + n.HTTPAddr }

// Cluster runs rls agent processes on loopback for multi-node and fault-injection tests.
// Every node has its own data dir and free ports under one directory that a failing test
// keeps (logs, data dirs, histories) and a passing one removes.
type Cluster struct {
	t     testing.TB
	opts  Options
	Dir   string
	Nodes []*Node
	net   *faultNet // nil unless Options.Proxied
	// client calls the nodes: the shared httpClient, or with Options.TLS one that trusts
	// the cluster CA and presents the admin participant's certificate.
	client *http.Client

	mu sync.Mutex
	// crashes lists the nodes that exited without the harness asking them to.
	crashes []string
}

// NewCluster starts a cluster described by opts and waits until its first Nodes nodes are
// voters with a leader. Processes are stopped and the directory removed (or kept, on
// failure) when the test ends.
func NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	opts.setDefaults()
	c := &Cluster{t: t, opts: opts, Dir: artifactDir(t), client: httpClient}
	t.Cleanup(c.cleanup)
	if err := os.WriteFile(c.tokenFile(), []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	slots := opts.Nodes + opts.Spares
	ports := freePorts(t, 3*slots)
	for i := 0; i < slots; i++ {
		id := fmt.Sprintf("n%d", i+1)
		c.Nodes = append(c.Nodes, &Node{
			Index: i, ID: id, Dir: filepath.Join(c.Dir, id), HTTPAddr: ports[3*i], RaftAddr: ports[3*i+1],
			LogPath: filepath.Join(c.Dir, id+".log"), config: filepath.Join(c.Dir, id+".hcl"), scheme: "http",
		})
		if opts.HL7 {
			c.Nodes[i].HL7Addr = ports[3*i+2]
		}
	}
	if opts.TLS {
		c.initTLS()
	}
	if opts.Proxied {
		fn, err := newFaultNet(c.Nodes)
		if err != nil {
			t.Fatalf("start link proxies: %v", err)
		}
		c.net = fn
	}
	for _, n := range c.Nodes {
		if err := os.WriteFile(n.config, []byte(c.hcl(n)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < opts.Nodes; i++ {
		var join []int
		if i > 0 {
			join = []int{0}
		}
		c.startNode(i, join)
		if i == 0 {
			c.WaitFor(20*time.Second, "the first node to lead", func() bool {
				s, err := c.Self(0)
				return err == nil && s.State == "leader" && s.LeaderReady
			})
		}
	}
	c.WaitVoters(30*time.Second, c.initial()...)
	return c
}

func (c *Cluster) initial() []int {
	var out []int
	for i := 0; i < c.opts.Nodes; i++ {
		out = append(out, i)
	}
	return out
}

// artifactDir makes the directory a test's nodes live in. It is not t.TempDir: a failing
// run keeps it for reading.
func artifactDir(t testing.TB) string {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "_")
	dir, err := os.MkdirTemp("", "rls-"+name+"-")
	if err != nil {
		t.Fatalf("create test directory: %v", err)
	}
	return dir
}

func (c *Cluster) tokenFile() string { return filepath.Join(c.Dir, "admin-token") }

// hcl is node n's config file: the raft settings the test asked for and, when proxied,
// the address n dials for each peer (its own proxy of that link).
func (c *Cluster) hcl(n *Node) string {
	var b strings.Builder
	b.WriteString("raft {\n")
	b.WriteString("  check_state_nesting = true\n")
	fmt.Fprintf(&b, "  heartbeat_timeout = %q\n", c.opts.HeartbeatTimeout)
	fmt.Fprintf(&b, "  election_timeout = %q\n", c.opts.ElectionTimeout)
	fmt.Fprintf(&b, "  leader_lease_timeout = %q\n", c.opts.LeaderLeaseTimeout)
	if c.opts.SnapshotInterval > 0 {
		fmt.Fprintf(&b, "  snapshot_interval = %q\n", c.opts.SnapshotInterval)
	}
	if c.opts.SnapshotThreshold > 0 {
		fmt.Fprintf(&b, "  snapshot_threshold = %d\n", c.opts.SnapshotThreshold)
	}
	if c.opts.TrailingLogs > 0 {
		fmt.Fprintf(&b, "  trailing_logs = %d\n", c.opts.TrailingLogs)
	}
	if c.opts.TLS {
		b.WriteString("  tls = true\n") // with the tls block's node certificate and CA
	}
	if c.net != nil {
		b.WriteString("  peer_dial_addresses = {\n")
		for _, peer := range c.Nodes {
			if peer != n {
				fmt.Fprintf(&b, "    %s = %q\n", peer.ID, c.net.listenAddr(n.Index, peer.Index))
			}
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	if n.HL7Addr != "" {
		fmt.Fprintf(&b, "hl7 {\n  listen = %q\n  trust_network = true\n  notify_interval = \"100ms\"\n}\n", n.HL7Addr)
	}
	if c.opts.TLS {
		dir := c.tlsDir()
		fmt.Fprintf(&b, "tls {\n  cert_file = %q\n  key_file = %q\n  ca_file = %q\n  client_auth = \"require\"\n}\n",
			filepath.Join(dir, n.ID+".pem"), filepath.Join(dir, n.ID+"-key.pem"), filepath.Join(dir, "ca.pem"))
	}
	b.WriteString(c.opts.ExtraHCL)
	return b.String()
}

func (c *Cluster) tlsDir() string { return filepath.Join(c.Dir, "tls") }

// initTLS makes the cluster's certificates with `rls tls init` (the admin participant gets
// a client certificate, which the harness calls with) and switches the nodes to https.
func (c *Cluster) initTLS() {
	c.t.Helper()
	var ids []string
	for _, n := range c.Nodes {
		ids = append(ids, n.ID)
		n.scheme = "https"
	}
	out, err := exec.Command(rlsBinary, "tls", "init", "-dir", c.tlsDir(), "-nodes", strings.Join(ids, ","),
		"-hosts", "127.0.0.1", "-participants", "admin", "-days", "1").CombinedOutput()
	if err != nil {
		c.t.Fatalf("rls tls init: %v\n%s", err, out)
	}
	cfg, err := clientTLS(filepath.Join(c.tlsDir(), "ca.pem"), filepath.Join(c.tlsDir(), "participant-admin.pem"), filepath.Join(c.tlsDir(), "participant-admin-key.pem"))
	if err != nil {
		c.t.Fatal(err)
	}
	t := httpClient.Transport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	c.client = &http.Client{Transport: t}
}

// clientTLS trusts the CA in caFile and, when certFile is set, presents that certificate.
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// freePorts returns n distinct free loopback addresses. All n listeners stay open until the
// last is taken: closed one at a time, the kernel may hand the same port out twice (seen:
// a node's HTTP and Raft addresses equal, so it could not start). The ports lie below the
// kernel's ephemeral range: a port from that range, free between this call and the node's
// bind seconds later, may meanwhile become the source port of any outgoing connection on
// the machine (seen: a node's Raft address taken so while other packages' tests ran).
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	low, high := 10000, ephemeralPortsStart()-1
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	addrs := make([]string, 0, n)
	for tries := 0; len(addrs) < n; tries++ {
		if tries == 100*n {
			t.Fatalf("no %d free loopback ports below %d", n, high+1)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(low+rng.IntN(high-low+1))))
		if err != nil {
			continue // taken
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// ephemeralPortsStart is the first port the kernel hands out for outgoing connections
// (32768, Linux's default, when it cannot say).
func ephemeralPortsStart() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return 32768
	}
	start, err := strconv.Atoi(fields[0])
	if err != nil || start <= 10000+1000 {
		return 32768
	}
	return start
}

// startNode starts node i's process; join lists the nodes it asks to join it when it has no
// state yet (none: it bootstraps if it is node 0).
func (c *Cluster) startNode(i int, join []int) {
	c.t.Helper()
	n := c.Nodes[i]
	args := []string{"agent", "-config", n.config, "-node-id", n.ID, "-data-dir", n.Dir,
		"-http-addr", n.HTTPAddr, "-raft-addr", n.RaftAddr, "-admin-token-file", c.tokenFile(), "-log-level", "debug"}
	if i == 0 && len(join) == 0 {
		args = append(args, "-bootstrap")
	}
	for _, j := range join {
		args = append(args, "-join", c.Nodes[j].URL())
	}
	logFile, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(logFile, "=== harness: start %s at %s\n", n.ID, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(rlsBinary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies (a -timeout panic), the node dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		c.t.Fatalf("start %s: %v", n.ID, err)
	}
	exited := make(chan struct{})
	c.mu.Lock()
	n.cmd, n.exited, n.stopped, n.expectEnd, n.started = cmd, exited, false, false, true
	c.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logFile.Close()
		c.mu.Lock()
		if !n.expectEnd {
			c.crashes = append(c.crashes, fmt.Sprintf("%s exited on its own: %v", n.ID, err))
		}
		c.mu.Unlock()
		close(exited)
	}()
}

// Start restarts node i on its data dir after Kill or Terminate.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("start %s: already running", c.Nodes[i].ID)
	}
	c.startNode(i, nil)
}

// AddNode starts spare node i and has it join through the running nodes.
func (c *Cluster) AddNode(i int) {
	c.t.Helper()
	var join []int
	for j := range c.Nodes {
		if j != i && c.Running(j) {
			join = append(join, j)
		}
	}
	c.startNode(i, join)
}

// Running reports whether node i has a live process (SIGSTOPped included).
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Nodes[i].cmd != nil
}

// Live lists the nodes with a process that is not SIGSTOPped.
func (c *Cluster) Live() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, n := range c.Nodes {
		if n.cmd != nil && !n.stopped {
			out = append(out, i)
		}
	}
	return out
}

// Processes lists the nodes with a process, SIGSTOPped ones included: where clients send.
func (c *Cluster) Processes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, n := range c.Nodes {
		if n.cmd != nil {
			out = append(out, i)
		}
	}
	return out
}

func (c *Cluster) signal(i int, sig syscall.Signal, expectEnd bool) (*exec.Cmd, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[i]
	if n.cmd == nil {
		return nil, nil
	}
	if expectEnd {
		n.expectEnd = true
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		c.t.Logf("signal %v to %s: %v", sig, n.ID, err)
	}
	return n.cmd, n.exited
}

func (c *Cluster) reap(i int, cmd *exec.Cmd) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Nodes[i].cmd == cmd {
		c.Nodes[i].cmd, c.Nodes[i].stopped = nil, false
	}
}

// Kill sends SIGKILL to node i and waits for the process to be gone.
func (c *Cluster) Kill(i int) {
	cmd, exited := c.signal(i, syscall.SIGKILL, true)
	if cmd == nil {
		return
	}
	<-exited
	c.reap(i, cmd)
	c.note(i, "SIGKILL")
}

// Terminate asks node i to shut down (SIGTERM) and kills it if it has not within 10 s.
func (c *Cluster) Terminate(i int) {
	c.Cont(i)
	cmd, exited := c.signal(i, syscall.SIGTERM, true)
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		c.reap(i, cmd)
	case <-time.After(10 * time.Second):
		c.t.Logf("%s did not stop within 10s of SIGTERM; killing it", c.Nodes[i].ID)
		c.Kill(i)
	}
}

// Restart kills node i (if it runs) and starts it again on its data dir.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Kill(i)
	c.Start(i)
}

// Stop freezes node i with SIGSTOP: its process, connections and timers stay, it answers
// nothing, as a node in a long GC pause or a VM migration.
func (c *Cluster) Stop(i int) {
	c.signal(i, syscall.SIGSTOP, false)
	c.mu.Lock()
	c.Nodes[i].stopped = c.Nodes[i].cmd != nil
	c.mu.Unlock()
	c.note(i, "SIGSTOP")
}

// Cont resumes node i after Stop.
func (c *Cluster) Cont(i int) {
	c.mu.Lock()
	stopped := c.Nodes[i].stopped
	c.mu.Unlock()
	if !stopped {
		return
	}
	c.signal(i, syscall.SIGCONT, false)
	c.mu.Lock()
	c.Nodes[i].stopped = false
	c.mu.Unlock()
	c.note(i, "SIGCONT")
}

// note marks a fault in the node's log, so that reading it after a failure lines up.
func (c *Cluster) note(i int, what string) {
	f, err := os.OpenFile(c.Nodes[i].LogPath, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "=== harness: %s %s at %s\n", what, c.Nodes[i].ID, time.Now().Format(time.RFC3339Nano))
	f.Close()
}

// CheckNoCrash fails the test if a node exited without the harness asking it to.
func (c *Cluster) CheckNoCrash() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.crashes {
		c.t.Errorf("node crash: %s", s)
	}
	c.crashes = nil
}

func (c *Cluster) cleanup() {
	for i := range c.Nodes {
		c.Cont(i)
	}
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Terminate(i)
		}()
	}
	wg.Wait()
	c.CheckNoCrash()
	if c.net != nil {
		c.net.close()
	}
	if !c.t.Failed() {
		if os.Getenv("RLS_KEEP_ARTIFACTS") != "" {
			c.t.Logf("RLS_KEEP_ARTIFACTS: kept %s", c.Dir)
			return
		}
		os.RemoveAll(c.Dir)
		return
	}
	for _, n := range c.Nodes {
		if b, err := os.ReadFile(n.LogPath); err == nil {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			c.t.Logf("last log lines of %s:\n%s", n.ID, strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	}
	c.t.Logf("kept the nodes' logs, data dirs and the recorded history in %s", c.Dir)
}

// pollInterval is how often the harness checks a condition: each check asks processes
// over HTTP, so it polls less often than in-process tests do.
const pollInterval = 50 * time.Millisecond

// WaitFor polls cond every pollInterval until it holds, failing the test after timeout.
func (c *Cluster) WaitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	if err := testkit.Poll(timeout, pollInterval, cond); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

// httpClient is shared by the harness and the workload clients; every call carries a
// deadline of its own.
var httpClient = &http.Client{Transport: &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 64,
	IdleConnTimeout:     30 * time.Second,
}}

// Response is one answer of a node.
type Response struct {
	Status int
	Body   []byte
	Header http.Header
}

// Do sends a request to node i with the admin token. body is nil, []byte, or a value sent
// as JSON.
func (c *Cluster) Do(ctx context.Context, i int, method, path string, body any) (Response, error) {
	return c.send(ctx, i, adminToken, method, path, body, nil)
}

// send sends a request to node i with a bearer token, the purpose of use every harness
// request declares, and the headers given (an empty value removes one). body is nil,
// []byte, or a value sent as JSON.
func (c *Cluster) send(ctx context.Context, i int, token, method, path string, body any, header map[string]string) (Response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Nodes[i].URL()+path, r)
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	setPurposeOfUse(req)
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Body: data, Header: resp.Header}, err
}

// purposeOfUseHeader and treatment are the purpose of use every harness request declares.
// Reads and writes of patient data (Patient, $ihe-pix, $match, DocumentReference,
// /v1/locate) are about to require one; the harness sends it on every request, since a
// request it forgot would then fail as a refusal in the middle of a fault scenario, and
// routes that do not look at it ignore it.
const (
	purposeOfUseHeader = "X-Rls-Purpose-Of-Use"
	treatment          = "TREAT"
)

func setPurposeOfUse(req *http.Request) { req.Header.Set(purposeOfUseHeader, treatment) }

// call is Do with a 20 s deadline, returning status, body and headers.
func (c *Cluster) call(i int, method, path string, body any) (int, []byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := c.Do(ctx, i, method, path, body)
	return r.Status, r.Body, r.Header, err
}

// callAs sends a request to node i with a participant's token and extra headers, within a
// minute, returning status and body.
func (c *Cluster) callAs(i int, token, method, path string, body any, header map[string]string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := c.send(ctx, i, token, method, path, body, header)
	return r.Status, r.Body, err
}

// getJSON reads path from node i into v within timeout, requiring a 200.
func (c *Cluster) getJSON(i int, path string, timeout time.Duration, v any) error {
	if u, err := url.Parse(path); err == nil && u.IsAbs() {
		path = u.RequestURI() // a next link: absolute, followed on node i
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := c.Do(ctx, i, "GET", path, nil)
	if err != nil {
		return err
	}
	if r.Status != 200 {
		return fmt.Errorf("GET %s on %s: %d %s", path, c.Nodes[i].ID, r.Status, bytes.TrimSpace(r.Body))
	}
	return json.Unmarshal(r.Body, v)
}

// LocalStatus is a node's view of itself (GET /v1/cluster/self).
type LocalStatus struct {
	ID            string `json:"id"`
	State         string `json:"state"`
	LeaderID      string `json:"leader_id"`
	Term          uint64 `json:"term"`
	LastLogIndex  uint64 `json:"last_log_index"`
	CommitIndex   uint64 `json:"commit_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	ReadableIndex uint64 `json:"readable_index"`
	LeaderReady   bool   `json:"leader_ready"`
}

// Self asks node i about itself, giving up after 2 s (a stopped node never answers).
func (c *Cluster) Self(i int) (LocalStatus, error) {
	var s LocalStatus
	err := c.getJSON(i, "/v1/cluster/self", 2*time.Second, &s)
	return s, err
}

type memberStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Suffrage     string `json:"suffrage"`
	RaftAddr     string `json:"raft_addr"`
	AppliedIndex uint64 `json:"applied_index"`
	Error        string `json:"error"`
}

type clusterStatus struct {
	Leader  string         `json:"leader"`
	Term    uint64         `json:"term"`
	Members []memberStatus `json:"members"`
}

// status is node i's GET /v1/cluster/status: the members of its Raft configuration.
func (c *Cluster) status(i int) (clusterStatus, error) {
	var st clusterStatus
	err := c.getJSON(i, "/v1/cluster/status", 5*time.Second, &st)
	return st, err
}

// Leader returns the node that reports itself leader at the highest term among the live
// nodes that answer, and whether it is ready for strong reads.
func (c *Cluster) Leader() (int, LocalStatus, error) {
	best, found := -1, LocalStatus{}
	for _, i := range c.Live() {
		s, err := c.Self(i)
		if err != nil || s.State != "leader" {
			continue
		}
		if best < 0 || s.Term > found.Term {
			best, found = i, s
		}
	}
	if best < 0 {
		return -1, found, errors.New("no live node reports itself leader")
	}
	return best, found, nil
}

// WaitLeader waits for a leader ready for strong reads that is not in exclude.
func (c *Cluster) WaitLeader(timeout time.Duration, exclude ...int) int {
	c.t.Helper()
	leader := -1
	c.WaitFor(timeout, "a ready leader", func() bool {
		i, s, err := c.Leader()
		if err != nil || !s.LeaderReady || containsInt(exclude, i) {
			return false
		}
		leader = i
		return true
	})
	return leader
}

// AgreedLeader returns the leader when every live node names the same one and exactly one
// live node is in the leader state.
func (c *Cluster) AgreedLeader() (int, error) {
	leaderID, leaders := "", 0
	for _, i := range c.Live() {
		s, err := c.Self(i)
		if err != nil {
			return -1, fmt.Errorf("%s: %w", c.Nodes[i].ID, err)
		}
		if s.State == "leader" {
			leaders++
		}
		if s.LeaderID == "" || (leaderID != "" && s.LeaderID != leaderID) {
			return -1, fmt.Errorf("%s names leader %q, others %q", s.ID, s.LeaderID, leaderID)
		}
		leaderID = s.LeaderID
	}
	if leaders != 1 {
		return -1, fmt.Errorf("%d nodes are in the leader state", leaders)
	}
	return c.indexOf(leaderID), nil
}

// WaitVoters waits until node nodes[0]'s configuration has exactly the given nodes, all
// voters, each answering for itself.
func (c *Cluster) WaitVoters(timeout time.Duration, nodes ...int) {
	c.t.Helper()
	c.WaitFor(timeout, fmt.Sprintf("%d voters with a leader", len(nodes)), func() bool {
		st, err := c.status(nodes[0])
		if err != nil || st.Leader == "" || len(st.Members) != len(nodes) {
			return false
		}
		for _, m := range st.Members {
			if m.Suffrage != "voter" || m.Error != "" || !containsInt(nodes, c.indexOf(m.ID)) {
				return false
			}
		}
		return true
	})
}

func (c *Cluster) indexOf(id string) int {
	for i, n := range c.Nodes {
		if n.ID == id {
			return i
		}
	}
	return -1
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// StateHash is a node's digest of its state at the index it holds.
type StateHash struct {
	Node  string `json:"node"`
	Index uint64 `json:"index"`
	Hash  string `json:"hash"`
}

func (c *Cluster) stateHash(i int) (StateHash, error) {
	var h StateHash
	err := c.getJSON(i, "/v1/cluster/state-hash", 10*time.Second, &h)
	return h, err
}

// WaitConverged waits until every live node reports the same state hash at the same index,
// failing at once if two nodes disagree at one index.
func (c *Cluster) WaitConverged(timeout time.Duration) StateHash {
	c.t.Helper()
	var first StateHash
	c.WaitFor(timeout, "equal state hashes on every live node", func() bool {
		live := c.Live()
		for k, i := range live {
			h, err := c.stateHash(i)
			if err != nil {
				return false
			}
			if k == 0 {
				first = h
				continue
			}
			if h.Index != first.Index {
				return false
			}
			if h.Hash != first.Hash {
				c.t.Fatalf("%s and %s disagree at index %d: %s vs %s", first.Node, h.Node, h.Index, first.Hash, h.Hash)
			}
		}
		return len(live) > 0
	})
	return first
}

// ParticipantIDs lists the participants node i holds, read from its own state page by page.
func (c *Cluster) ParticipantIDs(i int) (map[string]bool, error) {
	ids := map[string]bool{}
	const page = 1000
	for offset := 0; ; offset += page {
		var b struct {
			Total int `json:"total"`
			Entry []struct {
				Resource struct {
					ID string `json:"id"`
				} `json:"resource"`
			} `json:"entry"`
		}
		path := fmt.Sprintf("/fhir/Organization?consistency=stale&_count=%d&_offset=%d", page, offset)
		if err := c.getJSON(i, path, 20*time.Second, &b); err != nil {
			return nil, err
		}
		for _, e := range b.Entry {
			ids[e.Resource.ID] = true
		}
		if offset+page >= b.Total {
			return ids, nil
		}
	}
}

// Metric reads one unlabelled sample from node i's /metrics.
func (c *Cluster) Metric(i int, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Do(ctx, i, "GET", "/metrics", nil)
	if err != nil {
		return 0, err
	}
	if r.Status != 200 {
		return 0, fmt.Errorf("metrics of %s: %d", c.Nodes[i].ID, r.Status)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(r.Body)
	if m == nil {
		return 0, fmt.Errorf("%s has no sample %s", c.Nodes[i].ID, name)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// isDialError reports whether err means the connection was never made, so the request
// cannot have reached a node.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var ue *url.Error
	return errors.As(err, &ue) && errors.Is(err, syscall.ECONNREFUSED)
}

func newRequest(method, url, token string) (*http.Request, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	setPurposeOfUse(req)
	return req, nil
}
