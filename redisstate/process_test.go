package redisstate_test

import (
	"bufio"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// helper is a fleethelper process: one breaker of a fleet.
type helper struct {
	in  io.WriteCloser
	out *bufio.Scanner
	cmd *exec.Cmd
}

// buildHelper builds internal/fleethelper for the test.
func buildHelper(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fleethelper")
	out, err := exec.Command("go", "build", "-o", bin, "./internal/fleethelper").CombinedOutput()
	require.NoError(t, err, "building the helper: %s", out)
	return bin
}

func startHelper(t *testing.T, bin, addr string) *helper {
	t.Helper()
	cmd := exec.Command(bin, "-addr", addr)
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	h := &helper{in: in, out: bufio.NewScanner(out), cmd: cmd}
	t.Cleanup(func() {
		io.WriteString(h.in, "quit\n")
		h.in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	return h
}

// send sends a command and returns the helper's answer.
func (h *helper) send(t *testing.T, command string) string {
	t.Helper()
	_, err := io.WriteString(h.in, command+"\n")
	require.NoError(t, err)
	require.True(t, h.out.Scan(), "the helper stopped answering: %v", h.out.Err())
	return h.out.Text()
}

func TestFleetAcrossProcesses(t *testing.T) {
	r := startRedis(t)
	bin := buildHelper(t)
	procs := make([]*helper, 3)
	for i := range procs {
		procs[i] = startHelper(t, bin, r.addr)
	}
	each := func(command, want string) {
		t.Helper()
		for i, p := range procs {
			require.Equal(t, want, p.send(t, command), "process %d: %s", i, command)
		}
	}

	each("fail 3", "ok") // 9 failures in all, where a breaker needs 8 to trip
	each("wait open", "ok")
	each("wait half-open", "ok")

	admitted := 0
	for _, p := range procs {
		answer := p.send(t, "hold 4")
		n, err := strconv.Atoi(strings.TrimPrefix(answer, "admitted "))
		require.NoError(t, err, answer)
		admitted += n
	}
	assert.Equal(t, 2, admitted, "trial calls admitted across 3 processes, each of which would admit 2 alone")

	each("release", "ok")
	each("wait closed", "ok")
}
