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
	"strings"
	"sync"
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
	reg, clk := newRegistry(t, breaker.Config{WindowSize: 5, OpenTimeout: 30 * time.Second})
	h := breakerhttp.Handler(reg, breakerhttp.WithRefresh(time.Hour))
	circuits(t, reg)
	clk.Add(breakerhttp.DefaultHistoryStep) // one step of history
	srv := httptest.NewServer(h)
	defer srv.Close()

	dom := browse(t, srv.URL+"/dashboard", "--virtual-time-budget=2000", "--dump-dom")
	assert.Contains(t, dom, `<span id="summary" class="bad">1 of 2 unhealthy: payments</span>`)
	assert.NotContains(t, dom, `data-action=`, "no buttons without WithActions")

	payments := row(t, dom, "payments")
	assert.Contains(t, payments, `data-state="open"`)
	assert.Regexp(t, `<span class="state state-open" title="since [^"]+">open</span>`, payments)
	assert.Contains(t, payments, `<span style="width:60%"></span></span>60%</td>`, "the failure rate, with its bar")
	assert.Contains(t, payments, `<td>in 20.0 s</td>`, "the next probe")
	assert.Contains(t, payments, `<td class="num">10 s</td>`, "the time spent open")
	assert.Regexp(t, `<rect [^>]*class="band-open"><title>closed → open at [^:]+:[^:]+:[^:]+: failure rate 0.6 ≥ 0.5 over 5 calls</title></rect>`, payments, "the state timeline, with the reason")
	assert.Regexp(t, `<svg [^>]*data-plot="failure-rate"><path class="line" d="M[0-9.]+,[0-9.]+"></path>`, payments, "a failure-rate point")
	assert.Regexp(t, `<svg [^>]*data-plot="calls"><path class="calls" d="M[0-9.]+,26 V2.0 H[0-9.]+ V26 Z"></path><title>calls: at most 5 calls`, payments, "the step's calls, at the top of the plot")
	assert.Contains(t, payments, `<svg width="110" height="26" data-plot="refusals"><title>`, "no refusals yet")

	inventory := row(t, dom, "inventory")
	assert.Regexp(t, `<span class="state state-closed" title="since [^"]+">closed</span>`, inventory)
	assert.Contains(t, inventory, `<td class="num">4</td>`, "its calls")
	assert.Contains(t, inventory, `<td>—</td>`, "no probe to wait for")
	assert.Regexp(t, `<rect [^>]*class="band-closed"><title>closed until `, inventory, "sampled states before any change")
	assert.Regexp(t, `data-plot="failure-rate"><path class="line" d="M[0-9.]+,25.0"></path>`, inventory, "a failure rate of 0")
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
	assert.Regexp(t, `<span class="state state-closed" title="since [^"]+">closed</span>`, row(t, dom, "payments"))
}

func TestDashboardScreenshot(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{WindowSize: 20, MinimumCalls: 10, OpenTimeout: 30 * time.Second, SlowCallDuration: time.Second})
	clk.Set(time.Date(2026, 11, 23, 9, 15, 0, 0, time.UTC))
	h := breakerhttp.Handler(reg, breakerhttp.WithRefresh(time.Hour), breakerhttp.WithActions(func(*http.Request) bool { return false }))
	// outcome says how call i of step n of a circuit goes: S succeeds,
	// F fails, L succeeds slowly.
	type circuit struct {
		name    string
		calls   int
		outcome func(n, i int) byte
	}
	down := func(n int, spells ...[2]int) bool {
		for _, s := range spells {
			if n >= s[0] && n < s[1] {
				return true
			}
		}
		return false
	}
	all := []circuit{
		{"inventory", 30, func(n, i int) byte {
			if (n+i)%23 == 0 {
				return 'F'
			}
			return 'S'
		}},
		{"payments", 20, func(n, i int) byte {
			if down(n, [2]int{18, 27}, [2]int{80, 99}) || (n+i)%9 == 0 {
				return 'F'
			}
			return 'S'
		}},
		{"recommendations", 10, func(n, i int) byte {
			if i < 2+n%3 {
				return 'L'
			}
			return 'S'
		}},
		{"search", 16, func(n, i int) byte {
			if down(n, [2]int{40, 52}) {
				return 'F'
			}
			return 'S'
		}},
		{"shipping-rates", 8, func(int, int) byte { return 'S' }},
	}
	start := clk.Now()
	steps := breakerhttp.HistoryPoints
	for n := range steps {
		if n == 72 {
			shipping, _ := breaker.Get[int](reg, "shipping-rates")
			shipping.ForceOpen() // an operator steps in
		}
		for _, c := range all {
			b, err := breaker.Get[int](reg, c.name)
			require.NoError(t, err)
			wave := n % 12 // traffic that rises and falls
			if wave > 6 {
				wave = 12 - wave
			}
			for i := range c.calls + c.calls*wave/10 {
				b.Execute(context.Background(), func(context.Context) (int, error) {
					switch c.outcome(n, i) {
					case 'F':
						return 0, errBoom
					case 'L':
						clk.Add(1100 * time.Millisecond)
					}
					return 1, nil
				})
			}
		}
		clk.Add(start.Add(time.Duration(n+1) * breakerhttp.DefaultHistoryStep).Sub(clk.Now()))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/history", nil)) // the step's sample
		require.Equal(t, http.StatusOK, rec.Code)
	}
	clk.Add(4 * time.Second)
	payments, _ := breaker.Get[int](reg, "payments")
	require.Equal(t, breaker.StateOpen, payments.State(), "the scene shows an open circuit")

	srv := httptest.NewServer(h)
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "dashboard.png")
	browse(t, srv.URL+"/dashboard", "--virtual-time-budget=1000", "--window-size=1500,470", "--screenshot="+out)

	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, "a PNG")
	assert.Equal(t, 1500, img.Bounds().Dx())
	assert.Equal(t, 470, img.Bounds().Dy())
	// The timelines and plots are drawn: pixels of each state's colour
	// and of the calls' grey, in the history column.
	seen := map[string]int{}
	colours := map[[3]uint32]string{
		{0x1a, 0x7f, 0x37}: "closed", {0xcf, 0x22, 0x2e}: "open", {0x82, 0x50, 0xdf}: "forced-open", {0x57, 0x60, 0x6a}: "calls",
	}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := 900; x < 1320; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if name, ok := colours[[3]uint32{r >> 8, g >> 8, b >> 8}]; ok {
				seen[name]++
			}
		}
	}
	for _, name := range []string{"closed", "open", "forced-open", "calls"} {
		assert.Greater(t, seen[name], 100, "pixels of %s in the history column", name)
	}

	if *updateScreenshot {
		data, err := os.ReadFile(out)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join("..", "docs", "dashboard.png"), data, 0o644))
	}
}

func TestDashboardButtonActs(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	var (
		mu    sync.Mutex
		asked []string
	)
	h := breakerhttp.Handler(reg, breakerhttp.WithRefresh(time.Hour), breakerhttp.WithActions(func(r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, r.Method+" "+r.URL.String()+" "+r.Header.Get("Sec-Fetch-Site"))
		return true
	}))
	// The page as served, and a script after it that clicks the button
	// as an operator would.
	click := `<script>addEventListener("load", () => document.querySelector('tr[data-circuit="inventory"] button[data-action="force-open"]').click());</script>`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/dashboard" {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Write([]byte(strings.Replace(rec.Body.String(), "</body>", click+"</body>", 1)))
	}))
	defer srv.Close()

	dom := browse(t, srv.URL+"/dashboard", "--virtual-time-budget=3000", "--dump-dom")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"POST /actions/force-open?circuit=inventory same-origin"}, asked, "one click, one authorised request from the page itself")
	inv, _ := reg.Circuit("inventory")
	assert.Equal(t, breaker.StateForcedOpen, inv.State())
	assert.Contains(t, dom, `<span id="notice" class="">inventory: force-open done, now forced-open</span>`)
	inventory := row(t, dom, "inventory")
	assert.Contains(t, inventory, `data-state="forced-open"`, "the page refreshed after the action")
	for _, action := range []string{"force-open", "open-for", "disable", "reset"} {
		assert.Contains(t, inventory, `<button type="button" data-action="`+action+`">`)
	}
}
