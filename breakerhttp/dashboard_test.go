package breakerhttp_test

import (
	"context"
	"errors"
	"flag"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakerhttp"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the dashboard screenshot to docs/dashboard.png")

// chromium returns the path of a Chromium binary. Without one the test is
// skipped when run by hand, and fails in CI, which installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is not installed; .ci/run installs it")
	}
	t.Skip("Chromium is not installed (apt-get install chromium): skipping the browser test")
	return ""
}

// browse runs headless Chromium on url with args and returns its output.
func browse(t *testing.T, url string, args ...string) string {
	t.Helper()
	bin := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + t.TempDir(),
	}, append(args, url)...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "LANG=en_US.UTF-8")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Logf("chromium stderr:\n%s", exit.Stderr)
	}
	require.NoError(t, err)
	return string(out)
}

// row returns the table row of the named circuit in a dumped DOM.
func row(t *testing.T, dom, name string) string {
	t.Helper()
	m := regexp.MustCompile(`<tr data-circuit="` + regexp.QuoteMeta(name) + `"[^>]*>.*?</tr>`).FindString(dom)
	require.NotEmpty(t, m, "no row for %q in:\n%s", name, dom)
	return m
}

func renders(t *testing.T, dom string) int {
	t.Helper()
	m := regexp.MustCompile(`<body data-renders="(\d+)"`).FindStringSubmatch(dom)
	require.NotNil(t, m, "the page's script did not run")
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestDashboardInBrowser(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5, OpenTimeout: 30 * time.Second})
	circuits(t, reg)
	srv := httptest.NewServer(breakerhttp.Handler(reg, breakerhttp.WithRefresh(time.Hour)))
	defer srv.Close()

	dom := browse(t, srv.URL+"/dashboard", "--virtual-time-budget=2000", "--dump-dom")
	assert.Contains(t, dom, `<span id="summary" class="bad">1 of 2 unhealthy: payments</span>`)

	payments := row(t, dom, "payments")
	assert.Contains(t, payments, `data-state="open"`)
	assert.Contains(t, payments, `<span class="state state-open">open</span>`)
	assert.Contains(t, payments, `<span style="width:60%"></span></span>60%</td>`, "the failure rate, with its bar")
	assert.Contains(t, payments, `<td>in 30.0 s</td>`, "the next probe")
	assert.Regexp(t, `<span class="state-open" title="closed → open at [^"]+">`, payments, "the history")

	inventory := row(t, dom, "inventory")
	assert.Contains(t, inventory, `<span class="state state-closed">closed</span>`)
	assert.Contains(t, inventory, `<td class="num">4</td>`, "its calls")
	assert.Contains(t, inventory, `<td>—</td>`, "no probe to wait for")
}

func TestDashboardRefreshesItself(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	fetched := make(chan struct{}, 100)
	h := breakerhttp.Handler(reg, breakerhttp.WithRefresh(200*time.Millisecond))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			reg.ResetAll() // the page must show this on its next refresh
			fetched <- struct{}{}
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	dom := browse(t, srv.URL+"/dashboard", "--virtual-time-budget=3000", "--dump-dom")
	assert.NotEmpty(t, fetched, "the page fetched the figures again")
	assert.GreaterOrEqual(t, renders(t, dom), 2)
	assert.Contains(t, dom, `<span id="summary" class="ok">2 circuits, all healthy</span>`)
	assert.Contains(t, row(t, dom, "payments"), `<span class="state state-closed">closed</span>`)
}

func TestDashboardScreenshot(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{WindowSize: 10, MinimumCalls: 5, OpenTimeout: 30 * time.Second, SlowCallDuration: time.Second})
	clk.Set(time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC))
	calls := func(name string, outcomes string) {
		b, err := breaker.Get[int](reg, name)
		require.NoError(t, err)
		for _, o := range outcomes {
			b.Execute(context.Background(), func(context.Context) (int, error) {
				switch o {
				case 'F':
					return 0, errBoom
				case 'L':
					clk.Add(1500 * time.Millisecond)
				}
				return 1, nil
			})
			clk.Add(time.Second)
		}
	}
	calls("inventory", "SSSSSSSSSS")
	calls("recommendations", "SLSSLSSSFS")
	calls("search", "FFFFF")
	clk.Add(31 * time.Second)
	search, _ := breaker.Get[int](reg, "search")
	search.State() // half-open now
	calls("payments", "SSFSFFF")
	clk.Add(30 * time.Second)
	calls("payments", "F") // a failed probe: open again
	calls("shipping-rates", "SSS")
	shipping, _ := breaker.Get[int](reg, "shipping-rates")
	shipping.ForceOpen()

	srv := httptest.NewServer(breakerhttp.Handler(reg, breakerhttp.WithRefresh(time.Hour)))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "dashboard.png")
	browse(t, srv.URL+"/dashboard", "--virtual-time-budget=1000", "--window-size=1280,400", "--screenshot="+out)

	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, "a PNG")
	assert.Equal(t, 1280, img.Bounds().Dx())
	assert.Equal(t, 400, img.Bounds().Dy())

	if *updateScreenshot {
		data, err := os.ReadFile(out)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join("..", "docs", "dashboard.png"), data, 0o644))
	}
}
