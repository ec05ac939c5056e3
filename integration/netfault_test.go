package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Link is the directed Raft link from node From to node To: the connections From dials to
// reach To. It carries From's requests to To and To's answers to them; To's own requests
// to From travel on the reverse link.
type Link struct{ From, To int }

// faultNet is one in-process toxiproxy per directed link between the cluster's node slots.
// Node i dials peer j at proxy (i→j), which forwards to j's Raft address; disabling a proxy
// refuses new connections and cuts the open ones, toxics slow or reset them.
type faultNet struct {
	server *toxiproxy.ApiServer

	mu      sync.Mutex
	proxies map[Link]*toxiproxy.Proxy
}

func newFaultNet(nodes []*Node) (*faultNet, error) {
	f := &faultNet{
		server:  toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()),
		proxies: map[Link]*toxiproxy.Proxy{},
	}
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			l := Link{from.Index, to.Index}
			p := toxiproxy.NewProxy(f.server, fmt.Sprintf("%s->%s", from.ID, to.ID), "127.0.0.1:0", to.RaftAddr)
			if err := p.Start(); err != nil {
				f.close()
				return nil, fmt.Errorf("start proxy %s: %w", p.Name, err)
			}
			f.proxies[l] = p
		}
	}
	return f, nil
}

// listenAddr is where node from dials node to.
func (f *faultNet) listenAddr(from, to int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.proxies[Link{from, to}].Listen
}

func (f *faultNet) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.proxies {
		p.Stop()
	}
}

// setEnabled opens or cuts link l. A re-enabled proxy listens on the same port again.
func (f *faultNet) setEnabled(l Link, enabled bool) error {
	f.mu.Lock()
	p := f.proxies[l]
	f.mu.Unlock()
	if enabled {
		// The port was free a moment ago; another process may take it in between, so retry
		// briefly before giving up.
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			if err = p.Start(); err == nil || errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("re-enable proxy %s: %w", p.Name, err)
	}
	p.Stop()
	return nil
}

// addToxic adds (or replaces) a toxic named name on link l.
func (f *faultNet) addToxic(l Link, name, typ, stream string, toxicity float64, attrs string) error {
	f.mu.Lock()
	p := f.proxies[l]
	f.mu.Unlock()
	if p.Toxics.GetToxic(name) != nil {
		if err := p.Toxics.RemoveToxic(context.Background(), name); err != nil {
			return fmt.Errorf("replace toxic %s on %s: %w", name, p.Name, err)
		}
	}
	body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":%g,"attributes":%s}`, name, typ, stream, toxicity, attrs)
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
		return fmt.Errorf("add toxic %s to %s: %w", name, p.Name, err)
	}
	return nil
}

func (f *faultNet) resetToxics() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.proxies {
		p.Toxics.ResetToxics(context.Background())
	}
}

func (c *Cluster) faults() *faultNet {
	c.t.Helper()
	if c.net == nil {
		c.t.Fatal("network faults need Options.Proxied")
	}
	return c.net
}

// Links lists every directed link between two of the cluster's node slots.
func (c *Cluster) Links() []Link {
	var out []Link
	for i := range c.Nodes {
		for j := range c.Nodes {
			if i != j {
				out = append(out, Link{i, j})
			}
		}
	}
	return out
}

// Partition splits the nodes into groups that cannot reach each other: every link between
// two groups is cut both ways, every link inside a group is open. A node in no group is
// cut off from all others.
func (c *Cluster) Partition(groups ...[]int) {
	c.t.Helper()
	f := c.faults()
	group := map[int]int{}
	for g, members := range groups {
		for _, i := range members {
			group[i] = g + 1
		}
	}
	for _, l := range c.Links() {
		gFrom, okFrom := group[l.From]
		gTo, okTo := group[l.To]
		if err := f.setEnabled(l, okFrom && okTo && gFrom == gTo); err != nil {
			c.t.Fatal(err)
		}
	}
	var names []string
	for _, members := range groups {
		var ids []string
		for _, i := range members {
			ids = append(ids, c.Nodes[i].ID)
		}
		names = append(names, "{"+strings.Join(ids, ",")+"}")
	}
	for i := range c.Nodes {
		c.note(i, "partition "+strings.Join(names, " | "))
	}
}

// Cut disables the given directed links only (an asymmetric fault when the reverse link
// stays open).
func (c *Cluster) Cut(links ...Link) {
	c.t.Helper()
	for _, l := range links {
		if err := c.faults().setEnabled(l, false); err != nil {
			c.t.Fatal(err)
		}
	}
}

// Heal reopens every link and removes every toxic.
func (c *Cluster) Heal() {
	c.t.Helper()
	f := c.faults()
	f.resetToxics()
	for _, l := range c.Links() {
		if err := f.setEnabled(l, true); err != nil {
			c.t.Fatal(err)
		}
	}
	for i := range c.Nodes {
		c.note(i, "heal")
	}
}

// Slow delays every byte node l.From sends to node l.To by latency ± jitter: its requests
// on link l and its answers on the reverse link, as a slow network path between the two
// would.
func (c *Cluster) Slow(l Link, latency, jitter time.Duration) {
	c.t.Helper()
	f := c.faults()
	attrs := fmt.Sprintf(`{"latency":%d,"jitter":%d}`, latency.Milliseconds(), jitter.Milliseconds())
	if err := f.addToxic(l, "latency-requests", "latency", "upstream", 1, attrs); err != nil {
		c.t.Fatal(err)
	}
	if err := f.addToxic(Link{l.To, l.From}, "latency-answers", "latency", "downstream", 1, attrs); err != nil {
		c.t.Fatal(err)
	}
}

// DropConnections resets (TCP RST) connections of link l with probability p, once they have
// carried data for after. The draw is made for each new connection and, because adding the
// toxic restarts it on every open connection, again for each open one: calling it
// periodically keeps dropping connections that would otherwise live for ever.
func (c *Cluster) DropConnections(l Link, p float64, after time.Duration) {
	c.t.Helper()
	attrs := fmt.Sprintf(`{"timeout":%d}`, after.Milliseconds())
	if err := c.faults().addToxic(l, "reset", "reset_peer", "upstream", p, attrs); err != nil {
		c.t.Fatal(err)
	}
}

// ClearToxics removes every toxic, leaving cut links cut.
func (c *Cluster) ClearToxics() {
	c.faults().resetToxics()
}
