package otelmetrics

// CachedOutcomes returns the number of attribute sets l keeps for
// recording durations.
func CachedOutcomes(l *Listener) int {
	n := 0
	l.recordOpts.Range(func(any, any) bool {
		n++
		return true
	})
	return n
}
