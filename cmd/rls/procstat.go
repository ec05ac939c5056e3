package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Fields of /proc/PID/stat, counted from the first after the command name's closing
// parenthesis (field 3 of proc(5), the state, is 0).
const (
	statMajorFaults = 9  // majflt, field 12
	statUTime       = 11 // utime, field 14
	statSTime       = 12 // stime, field 15
)

// procStat reads the fields of /proc/PID/stat after the command name; false where there is
// no such file (not Linux) or it does not parse.
func procStat(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	return parseProcStat(b)
}

// parseProcStat splits a /proc/PID/stat line into the fields after the command name.
func parseProcStat(b []byte) ([]string, bool) {
	// The command name (field 2) may hold spaces and parentheses; the fields after its
	// closing parenthesis are plain.
	end := strings.LastIndexByte(string(b), ')')
	if end < 0 {
		return nil, false
	}
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) <= statSTime {
		return nil, false
	}
	return fields, true
}

// procMajorFaults reads how many page faults of a process have read from disk so far.
func procMajorFaults(pid int) (uint64, bool) {
	fields, ok := procStat(pid)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(fields[statMajorFaults], 10, 64)
	return n, err == nil
}

// majorFaultsCollector counts the agent's major page faults, where the system reports them.
// A node's state file is memory-mapped: a flush reads every page it rewrites, and when the
// node lacks memory to keep the file cached each such read is a disk read. At a million
// persons on a machine too small for three nodes a fifth of the leader's CPU went there.
func majorFaultsCollector() (prometheus.Collector, bool) {
	pid := os.Getpid()
	if _, ok := procMajorFaults(pid); !ok {
		return nil, false
	}
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "rls_process_major_page_faults_total",
		Help: "Page faults of this process that read from disk (from /proc/self/stat). Growing during an import, the node lacks memory to keep its state file cached.",
	}, func() float64 {
		n, _ := procMajorFaults(pid)
		return float64(n)
	}), true
}
