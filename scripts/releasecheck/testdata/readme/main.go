// Command readme holds every Go snippet of the repository's README.md,
// each between a readme:begin and a readme:end line, in a function that
// gives it what it uses. The release check builds it in a module outside
// the repository against the published modules, and fails when a README
// block and its region here are not the same text: edit both.
package main

import (
	"context"
	"errors"
	"net/http"
)

func main() {}

// What the snippets take as given: the user's own types and functions.
type (
	Receipt struct{}
	Quote   struct{}
)

var cache interface{ Last() Quote }

func fetchQuote(context.Context) (Quote, error) { return Quote{}, errors.New("down") }

// retry calls f until it succeeds, at most tries times.
func retry[T any](ctx context.Context, tries int, f func(context.Context) (T, error)) (T, error) {
	var v T
	var err error
	for range tries {
		if v, err = f(ctx); err == nil {
			break
		}
	}
	return v, err
}

var apiHandler http.Handler = http.NotFoundHandler()
