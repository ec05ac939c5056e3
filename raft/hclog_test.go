package raft

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
)

// lockedBuffer collects log output written from raft's goroutines while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestHCLogFormatsHclogValues(t *testing.T) {
	servers := []hraft.Server{
		{ID: "n1", Address: "127.0.0.1:7000", Suffrage: hraft.Voter},
		{ID: "n2", Address: "127.0.0.1:7001", Suffrage: hraft.Nonvoter},
	}
	cases := []struct {
		name string
		args []any
		want string
	}{
		{"servers", []any{"servers", hclog.Fmt("%+v", servers)}, `servers="n1 at 127.0.0.1:7000 (Voter), n2 at 127.0.0.1:7001 (Nonvoter)"`},
		{"no servers", []any{"servers", hclog.Fmt("%+v", []hraft.Server{})}, "servers=none"},
		{"format", []any{"percent-complete", hclog.Fmt("%0.2f%%", 12.5)}, "percent-complete=12.50%"},
		{"two values", []any{"received", hclog.Fmt("%d / %d", 3, 10)}, `received="3 / 10"`},
		{"hex", []any{"flags", hclog.Hex(255)}, "flags=0xff"},
		{"octal", []any{"mode", hclog.Octal(8)}, "mode=010"},
		{"binary", []any{"bits", hclog.Binary(5)}, "bits=0b101"},
		{"quote", []any{"text", hclog.Quote("a \"b\"\n")}, `text="a \"b\"\n"`},
		{"plain", []any{"index", uint64(7), "term", 2}, "index=7 term=2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			logger := newHCLog(slog.New(slog.NewTextHandler(&out, nil)), "raft")
			before := append([]any(nil), c.args...)
			logger.Info("msg", c.args...)
			if line := strings.TrimSpace(out.String()); !strings.HasSuffix(line, " "+c.want) {
				t.Errorf("logged %s\nwant it to end with %s", line, c.want)
			}
			for i := range before {
				if _, isFormat := before[i].(hclog.Format); !isFormat && before[i] != c.args[i] {
					t.Errorf("the caller's argument %d changed from %v to %v", i, before[i], c.args[i])
				}
			}
		})
	}

	var out bytes.Buffer
	logger := newHCLog(slog.New(slog.NewTextHandler(&out, nil)), "raft").With("peer", hclog.Fmt("%s/%s", "n1", "n2"))
	logger.Info("msg")
	if !strings.Contains(out.String(), "peer=n1/n2") {
		t.Errorf("With argument not formatted: %s", out.String())
	}
}

// TestNodeStartLogsReadableConfiguration starts a real node and checks that the lines
// hashicorp/raft logs through the adapter carry no unformatted hclog value.
func TestNodeStartLogsReadableConfiguration(t *testing.T) {
	var out lockedBuffer
	c := newTestCluster(t, 1, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c.close()
	logged := out.String()
	var configLines int
	for _, line := range strings.Split(logged, "\n") {
		if strings.Contains(line, "%+v") || strings.Contains(line, "%0.2f") || strings.Contains(line, "%d") {
			t.Errorf("unformatted hclog value: %s", line)
		}
		if strings.Contains(line, "initial configuration") {
			configLines++
			if !strings.Contains(line, "servers=none") && !strings.Contains(line, `servers="n1 at `) {
				t.Errorf("initial configuration line without readable servers: %s", line)
			}
		}
	}
	if configLines == 0 {
		t.Fatalf("no initial configuration line logged:\n%s", logged)
	}
}
