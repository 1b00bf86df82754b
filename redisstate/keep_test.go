package redisstate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
)

// TestKeptPushesAreBounded: a member cut off for many rounds keeps at most
// maxKept pushes, the newest, whether they could be merged or not (a push
// whose command may have run never is), and none older than the window.
func TestKeptPushesAreBounded(t *testing.T) {
	for _, sent := range []bool{false, true} {
		m := &member{cfg: breaker.Config{WindowDuration: time.Minute, BucketDuration: time.Second}}
		start := time.Now().Add(-50 * time.Second)
		var seq uint64
		for i := range 1000 { // a push every 50 ms for 50 s, kept one at a time
			seq++
			m.keep([]push{{at: start.Add(time.Duration(i) * 50 * time.Millisecond), t: breaker.Totals{Calls: 1}, seq: seq}}, sent)
		}
		m.keep([]push{{at: time.Now().Add(-2 * time.Minute), t: breaker.Totals{Calls: 5}, seq: seq + 1}}, sent) // older than the window
		require.LessOrEqual(t, len(m.kept), maxKept, "sent %v", sent)
		calls := uint64(0)
		for _, p := range m.kept {
			calls += p.t.Calls
			assert.Less(t, time.Since(p.at), time.Minute, "nothing older than the window")
		}
		assert.Equal(t, seq, m.kept[len(m.kept)-1].seq, "the newest are kept")
		if sent {
			assert.Equal(t, uint64(maxKept), calls, "unmerged: the newest 32")
		} else {
			assert.Equal(t, uint64(1000), calls, "merged by bucket: every call is kept")
		}
	}
}
