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
