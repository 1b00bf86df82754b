package breaker

import (
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStripedStartsWithOneCell(t *testing.T) {
	var s striped
	for range 1000 {
		s.add(0)
		s.add(1)
		require.True(t, s.addTagged(7))
	}
	assert.Equal(t, 1, s.width(), "an uncontended counter never grows")
	assert.Nil(t, s.table.Load())
	assert.Equal(t, uint64(1000), s.sum(0))
	assert.Equal(t, uint64(1000), s.sum(1))
	assert.Equal(t, uint64(1000), s.undrained())
	assert.LessOrEqual(t, unsafe.Sizeof(s), uintptr(2*cellSize), "one cell and a pointer")
}

func TestStripedTags(t *testing.T) {
	var s striped
	require.True(t, s.addTagged(1))
	require.True(t, s.addTagged(1))
	assert.False(t, s.addTagged(2), "the cell holds counts of generation 1")

	matched, all := s.drain(2)
	assert.Equal(t, uint64(0), matched, "counts of another generation are not matched")
	assert.Equal(t, uint64(2), all, "but they are drained")
	assert.Zero(t, s.undrained())

	require.True(t, s.addTagged(2), "an empty cell takes any tag")
	matched, all = s.drain(2)
	assert.Equal(t, uint64(1), matched)
	assert.Equal(t, uint64(1), all)

	s.base.tagged.Store(3<<32 | countMask)
	assert.False(t, s.addTagged(3), "a full cell refuses")
	matched, _ = s.drain(3)
	assert.Equal(t, uint64(countMask), matched)
	assert.True(t, s.addTagged(3))
}

func TestStripedGrowKeepsCounts(t *testing.T) {
	var s striped
	s.add(0)
	s.addTagged(5)
	tab := s.grow(nil)
	require.NotNil(t, tab)
	assert.Equal(t, firstGrow, s.width())
	for range 10 {
		s.add(0)
		s.addTagged(5)
	}
	tab = s.grow(tab)
	assert.Equal(t, 2*firstGrow, s.width())
	for range 10 {
		s.add(0)
		s.addTagged(5)
	}
	assert.Equal(t, uint64(21), s.sum(0), "the base and every earlier table still count")
	matched, all := s.drain(5)
	assert.Equal(t, uint64(21), matched)
	assert.Equal(t, uint64(21), all)

	stale := s.grow(nil)
	assert.Same(t, tab, stale, "a grow that lost the race returns the table in use")
}

func TestStripedGrowthIsCapped(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var s striped
	var tab *cellTable
	for range 20 {
		tab = s.grow(tab)
	}
	assert.Equal(t, 16, s.width(), "at least 16 cells, whatever the processors")
	assert.Equal(t, 16, maxCells())

	runtime.GOMAXPROCS(128)
	assert.Equal(t, 512, maxCells(), "four per processor")
	runtime.GOMAXPROCS(1000)
	assert.Equal(t, 1024, maxCells(), "and at most 1024")
}

func TestStripedCellsAreLineAligned(t *testing.T) {
	var s striped
	tab := s.grow(s.grow(nil))
	assert.Equal(t, uintptr(cellSize), unsafe.Sizeof(cell{}))
	assert.Equal(t, uintptr(cellSize), unsafe.Sizeof(cellTable{}), "the header fills one line")
	assert.Zero(t, uintptr(unsafe.Pointer(tab))%cellSize)
	for i := range tab.cells {
		assert.Zero(t, uintptr(unsafe.Pointer(&tab.cells[i]))%cellSize, "cell %d", i)
	}
}

func TestStripedConcurrentCountsAreExact(t *testing.T) {
	const goroutines, each = 64, 2000
	var s striped
	var drained uint64 // by one goroutine, as a breaker's lock holder would
	var wg sync.WaitGroup
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				_, all := s.drain(9)
				drained += all
				runtime.Gosched()
			}
		}
	}()
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				s.add(1)
				for !s.addTagged(9) { // only a full cell refuses tag 9
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	_, all := s.drain(9)
	drained += all
	assert.Equal(t, uint64(goroutines*each), s.sum(1))
	assert.Zero(t, s.sum(0))
	assert.Equal(t, uint64(goroutines*each), drained, "every tagged count is drained exactly once")
	assert.LessOrEqual(t, s.width(), maxCells())
}

func TestStripedReseedsOnRepeatedCollisions(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var s striped
	var tab *cellTable
	for range 10 {
		tab = s.grow(tab)
	}
	require.Equal(t, 16, s.width(), "at its limit")
	seed := s.seed.Load()
	c := s.pick(tab)
	for range reseedAfter - 1 {
		require.Same(t, tab, s.collided(tab, c), "no bigger table to move to")
	}
	assert.Equal(t, seed, s.seed.Load(), "a few collisions change nothing")
	s.collided(tab, c)
	assert.NotEqual(t, seed, s.seed.Load(), "repeated ones re-seed the hash")
}
