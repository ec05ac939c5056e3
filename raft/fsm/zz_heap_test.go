package fsm

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
)

func TestZZHeap(t *testing.T) {
	if os.Getenv("ZZHEAP") == "" {
		t.Skip()
	}
	res := testing.Benchmark(BenchmarkRegisterThroughFSM)
	_ = res
}

func zzDumpHeap() {
	if os.Getenv("ZZHEAP") == "" {
		return
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	println("heapinuse MiB", ms.HeapInuse>>20, "heapalloc", ms.HeapAlloc>>20, "sys", ms.Sys>>20)
	f, _ := os.Create(os.Getenv("ZZHEAP"))
	pprof.Lookup("heap").WriteTo(f, 0)
	f.Close()
}
