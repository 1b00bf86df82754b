package redisstate

// Deaf stops s hearing published changes, as if every message were lost:
// it then learns of changes from its syncs alone.
func Deaf(s *Store) error {
	ctx, cancel := s.timeout()
	defer cancel()
	return s.pubsub.Unsubscribe(ctx)
}

// Members returns how many breakers s syncs.
func Members(s *Store) int { return len(s.all()) }

// KeyTag returns the start of the keys of the breaker named name.
func KeyTag(prefix, name string) string { return keyTag(prefix, name) }

// Rounds returns how many syncs s has done that reached Redis.
func Rounds(s *Store) int64 { return s.rounds.Load() }

// Chunks returns how many sync chunks s has begun.
func Chunks(s *Store) int64 { return s.chunks.Load() }

// SyncNow runs one sync round of s, as its goroutine does every
// SyncInterval. Give s a long SyncInterval, so that the two do not race.
func SyncNow(s *Store) { s.syncAll() }

// Detached returns how many of s's breakers are cut off.
func Detached(s *Store) int {
	n := 0
	for _, m := range s.all() {
		if !m.attached() {
			n++
		}
	}
	return n
}

// Synced reports whether every breaker of s has synced once.
func Synced(s *Store) bool {
	for _, m := range s.all() {
		m.mu.Lock()
		ok := m.synced
		m.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}
