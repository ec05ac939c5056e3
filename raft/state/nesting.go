package state

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
)

// A goroutine that holds a read transaction of the state file must never open another:
// once the file outgrows its memory map, the flush that maps more waits for every open
// reader to finish, and bbolt makes each new reader wait behind that flush, so the second
// transaction waits for the first, which waits for it (the state machine, which holds one
// the whole time it applies, is the usual holder). Nothing in the types prevents it, so
// the tests check it: CheckNesting makes every View, ViewFile and Applying of a store
// note which goroutine holds a transaction, and panic, naming the culprit in the stack,
// when one opens a second. It costs a stack read per transaction, so nodes leave it off.

// nestingCheck records the goroutines holding a transaction of one store.
type nestingCheck struct {
	mu      sync.Mutex
	holding map[uint64]int
}

// CheckNesting turns the nesting check on (tests only; see above). Call it before the
// store is used.
func (s *Store) CheckNesting() { s.nesting = &nestingCheck{holding: map[uint64]int{}} }

// Applying marks the calling goroutine as holding the state machine's transaction until
// the returned function is called: the FSM calls it around each batch it applies.
func (s *Store) Applying() (done func()) { return s.enter("the state machine's batch") }

// enter records that the calling goroutine opens a transaction (what), panicking if it
// holds one already; the returned function records its end.
func (s *Store) enter(what string) func() {
	c := s.nesting
	if c == nil {
		return func() {}
	}
	g := goroutineID()
	c.mu.Lock()
	held := c.holding[g]
	c.holding[g]++
	c.mu.Unlock()
	if held > 0 {
		c.leave(g)
		panic(fmt.Sprintf("state: goroutine %d opened %s while holding a transaction of the state: a flush that grows the file would wait for it forever", g, what))
	}
	return func() { c.leave(g) }
}

func (c *nestingCheck) leave(g uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding[g]--; c.holding[g] <= 0 {
		delete(c.holding, g)
	}
}

// goroutineID reads the calling goroutine's number from the first line of its stack
// ("goroutine 123 [running]:"); the runtime offers no other way, and the check needs no more.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}
