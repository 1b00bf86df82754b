// Package breakerhttp puts circuit breakers around HTTP: a client
// RoundTripper with one breaker per host, a server middleware that answers
// 503 while its breaker is open, and a handler that reports the circuits
// of a breaker.Registry as JSON for load balancers and as a live HTML
// dashboard for people, with 15 minutes of history per circuit and, when
// enabled (WithActions), buttons that move the circuits by hand.
//
// It uses the standard library only.
package breakerhttp
