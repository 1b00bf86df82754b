package breakerhttp

import (
	"net/http"

	"github.com/seed18491788/breaker"
)

// RegistryOf returns the registry a Transport takes its breakers from.
func RegistryOf(rt http.RoundTripper) *breaker.Registry { return rt.(*transport).reg }
