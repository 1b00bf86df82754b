package breaker

import (
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// striped is a set of counters that many goroutines can bump at once, as
// Java's LongAdder does: a single base cell to begin with, and a table of
// padded cells only once a compare-and-swap on the base has failed, that is
// once two goroutines have collided. The table doubles on each later
// failed CAS, up to maxCells. An uncontended counter so costs one cell,
// whatever GOMAXPROCS; a contended one spreads its writers over cache lines
// of their own. Reading a total reads every cell.
//
// Each cell holds plainCounts plain counts, which only grow (add, sum), and
// a tagged count. The tagged count belongs to the generation named by its
// tag: addTagged adds to it only while the cell is empty or holds that tag,
// and drain empties it, so that counts of a generation that has ended can
// be told apart and dropped.
//
// A goroutine picks its cell by the address of a variable on its stack: that
// stays put while the goroutine runs, differs between goroutines, and
// goroutines tend to reuse stacks freed on the same processor. Two that
// keep colliding in a table that cannot grow make the counter re-seed its
// hash, as LongAdder moves a thread's probe, so that they part.
type striped struct {
	base  cell
	table atomic.Pointer[cellTable] // nil until the base is contended
	seed  atomic.Uint64             // mixed into the hash, so that collisions differ between counters
}

// cellSize is the size of a cell: one cache line.
const cellSize = 64

// plainCounts is the number of plain counts in a cell.
const plainCounts = 2

type cell struct {
	plain      [plainCounts]atomic.Uint64
	tagged     atomic.Uint64 // tag<<32 | count
	collisions atomic.Uint32 // failed CASes in a table at its limit
	_          [cellSize - 8*plainCounts - 12]byte
}

// reseedAfter is how many collisions in one cell of a full table make the
// counter re-seed its hash.
const reseedAfter = 64

// cellTable is a generation of cells. Its header is read by every call and
// fills a cache line of its own (an object of a multiple of 64 bytes is
// allocated on a 64-byte boundary), so that no other object's writes evict
// it; its cells, one allocation, are line-aligned for the same reason. A
// grown table keeps the one it replaced, whose counts still count.
type cellTable struct {
	cells []cell // a power of two of them
	shift uint   // 64 - log2(len(cells))
	prev  *cellTable
	limit int // maxCells when the first table was made
	_     [cellSize - 48]byte
}

const (
	countMask = 1<<32 - 1
	firstGrow = 4 // cells made when the base is first contended
)

// maxCells is the most cells a table grows to: four per processor, so that
// goroutines running at once seldom share one, and at least 16.
func maxCells() int {
	n := 4 * runtime.GOMAXPROCS(0)
	return max(16, min(1<<bits.Len(uint(n-1)), 1024))
}

// pick returns the calling goroutine's cell in t. The stack address is
// mixed with the seed and spread by Fibonacci hashing, whose top bits depend
// on all of it.
func (s *striped) pick(t *cellTable) *cell {
	var anchor byte
	h := (uint64(uintptr(unsafe.Pointer(&anchor))) ^ s.seed.Load()) * 0x9e3779b97f4a7c15
	return &t.cells[h>>t.shift]
}

// grow replaces t (nil: the base alone) by a table twice its size, unless t
// is at maxCells or another goroutine grew it first, and returns the table
// now in use.
func (s *striped) grow(t *cellTable) *cellTable {
	n, limit := firstGrow, 0
	if t == nil {
		limit = maxCells() // GOMAXPROCS takes a runtime lock: ask once
	} else {
		n, limit = 2*len(t.cells), t.limit
	}
	if n > limit {
		return t
	}
	next := &cellTable{cells: make([]cell, n), shift: uint(64 - bits.TrailingZeros(uint(n))), prev: t, limit: limit}
	if s.table.CompareAndSwap(t, next) {
		return next
	}
	return s.table.Load()
}

// collided notes a failed CAS on c, a cell of t, and returns the table to
// retry in: a bigger one, or t itself once it is at its limit, with the
// hash re-seeded after reseedAfter collisions in c.
func (s *striped) collided(t *cellTable, c *cell) *cellTable {
	next := s.grow(t)
	if next == t && t != nil && c.collisions.Add(1)%reseedAfter == 0 {
		s.seed.Store(rand.Uint64())
	}
	return next
}

// each calls f for every cell of s.
func (s *striped) each(f func(*cell)) {
	f(&s.base)
	for t := s.table.Load(); t != nil; t = t.prev {
		for i := range t.cells {
			f(&t.cells[i])
		}
	}
}

// add adds one to plain count i and returns the count of the cell it went
// to, for callers that do something every so many adds. Its uncontended
// path is small enough to inline.
func (s *striped) add(i int) uint64 {
	if s.table.Load() == nil {
		v := s.base.plain[i].Load()
		if s.base.plain[i].CompareAndSwap(v, v+1) {
			return v + 1
		}
	}
	return s.addContended(i)
}

// addContended is add once the base is contended.
func (s *striped) addContended(i int) uint64 {
	t := s.table.Load()
	if t == nil {
		t = s.grow(nil)
	}
	for {
		c := s.pick(t)
		v := c.plain[i].Load()
		if c.plain[i].CompareAndSwap(v, v+1) {
			return v + 1
		}
		t = s.collided(t, c)
	}
}

// sum returns plain count i.
func (s *striped) sum(i int) uint64 {
	var n uint64
	s.each(func(c *cell) { n += c.plain[i].Load() })
	return n
}

// addTagged adds one to the tagged count for tag and reports whether it
// did: it does not when the goroutine's cell holds another tag (left by an
// earlier generation and not drained yet) or is full.
func (s *striped) addTagged(tag uint32) bool {
	c := &s.base
	t := s.table.Load()
	if t != nil {
		c = s.pick(t)
	}
	for {
		old := c.tagged.Load()
		next := old + 1
		switch {
		case old&countMask == 0:
			next = uint64(tag)<<32 | 1
		case uint32(old>>32) != tag || old&countMask == countMask:
			return false
		}
		if c.tagged.CompareAndSwap(old, next) {
			return true
		}
		if t = s.collided(t, c); t != nil {
			c = s.pick(t)
		}
	}
}

// drain empties the tagged counts and returns how many carried tag and how
// many were drained in all.
func (s *striped) drain(tag uint32) (matched, all uint64) {
	s.each(func(c *cell) {
		if c.tagged.Load()&countMask == 0 {
			return
		}
		v := c.tagged.Swap(0)
		if uint32(v>>32) == tag {
			matched += v & countMask
		}
		all += v & countMask
	})
	return matched, all
}

// undrained returns the tagged counts not drained yet, whatever their tag.
func (s *striped) undrained() uint64 {
	var n uint64
	s.each(func(c *cell) { n += c.tagged.Load() & countMask })
	return n
}

// width returns the number of cells that calls now spread over: 1 until
// the base is contended.
func (s *striped) width() int {
	if t := s.table.Load(); t != nil {
		return len(t.cells)
	}
	return 1
}
