package main

import (
	"os"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestParseProcStat: the fields after a command name that holds spaces and parentheses.
func TestParseProcStat(t *testing.T) {
	line := []byte("4242 (rls (agent) n1) S 1 4242 4242 0 -1 4194560 1800 0 37 0 150 25 0 0 20 0 12 0 100 0 0\n")
	fields, ok := parseProcStat(line)
	if !ok {
		t.Fatal("not parsed")
	}
	if fields[0] != "S" || fields[statMajorFaults] != "37" || fields[statUTime] != "150" || fields[statSTime] != "25" {
		t.Fatalf("state %q, majflt %q, utime %q, stime %q; want S, 37, 150, 25", fields[0], fields[statMajorFaults], fields[statUTime], fields[statSTime])
	}
	for _, bad := range [][]byte{[]byte("4242 (rls"), []byte("4242 (rls) S 1 2 3"), nil} {
		if _, ok := parseProcStat(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestMajorFaultsCollector: on Linux the agent's counter reads this process's own count.
func TestMajorFaultsCollector(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/self/stat is Linux's")
	}
	c, ok := majorFaultsCollector()
	if !ok {
		t.Fatal("no /proc/self/stat on Linux")
	}
	want, _ := procMajorFaults(os.Getpid())
	if cpu, ok := procCPU(os.Getpid()); !ok || cpu < 0 {
		t.Fatalf("CPU time %v, %v", cpu, ok)
	}
	got := testutil.ToFloat64(c)
	// Faults only grow: the counter read after want is at least want.
	if got < float64(want) {
		t.Fatalf("counter %v, below the process's %d major faults read before it", got, want)
	}
	if n := testutil.CollectAndCount(c, "rls_process_major_page_faults_total"); n != 1 {
		t.Fatalf("%d series named rls_process_major_page_faults_total, want 1", n)
	}
}
