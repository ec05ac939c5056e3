//go:build unix

package main

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSynthOutToPipe writes to a named pipe: it must stay a pipe (a
// rename over it would replace a device such as /dev/null with a file).
func TestSynthOutToPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	got := make(chan int64, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- -1
			return
		}
		defer f.Close()
		n, _ := io.Copy(io.Discard, f)
		got <- n
	}()
	if _, errOut, code := rls(t, "mpi", "synth", "--persons", "50", "--out", fifo); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if n := <-got; n <= 0 {
		t.Fatalf("the pipe's reader got %d bytes", n)
	}
	if st, err := os.Stat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the pipe is no longer a pipe: %v %v", st.Mode(), err)
	}
}
