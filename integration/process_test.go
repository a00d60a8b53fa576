//go:build e2e

package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// vigilBinary builds cmd/vigil once per test binary (or uses $VIGIL_BIN).
func vigilBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIGIL_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vigil")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/vigil").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// portAttempts bounds how often a program told its ports is started again
// on other ports after it could not bind them.
const portAttempts = 5

// retryOnPortClash runs start (which picks its ports with freePort) until
// the program it starts comes up: start returns a channel closed if the
// program exits and a probe telling whether it is ready. A program that
// exits before it is ready (its port taken meanwhile) is started again on
// other ports.
func retryOnPortClash(t *testing.T, what string, start func() (exited <-chan struct{}, ready func() bool)) {
	t.Helper()
	for attempt := 1; attempt <= portAttempts; attempt++ {
		exited, ready := start()
		if waitReadyOrExit(t, what, exited, ready) {
			return
		}
		t.Logf("%s exited before it was ready (attempt %d; a port taken?); starting it on other ports", what, attempt)
	}
	t.Fatalf("%s could not start in %d attempts", what, portAttempts)
}

// waitReadyOrExit waits, at most a minute, until ready or exited: true when
// ready.
func waitReadyOrExit(t *testing.T, what string, exited <-chan struct{}, ready func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if ready() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s was not ready within a minute", what)
	return false
}

// process is one vigil process started from the built binary. Its ports
// are chosen by the kernel (port 0) at every start and read back from the
// "vigil started" line of its log: no port is picked in advance, so none
// can be taken by another process meanwhile.
type process struct {
	t       *testing.T
	name    string
	args    []string
	join    func() string // the gossip addresses to join at each start; nil: none
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	offset  int64 // where this run's lines start in the log

	mu    sync.Mutex
	addrs map[string]string // http, grpc, admin, gossip of the current run
}

func newProcess(t *testing.T, name string, args ...string) *process {
	p := &process{t: t, name: name}
	p.logPath = filepath.Join(t.TempDir(), name+".log")
	p.args = append([]string{
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=0",
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=0",
		"-admin.listen-port=0",
		"-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port=0",
	}, args...)
	// The "vigil started" line, which tells the ports, is logged at info.
	p.args = append(p.args, "-log.level=info")
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- last log lines of %s ---\n%s", p.name, p.logTail(40))
		}
	})
	return p
}

func (p *process) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// addr is one of the addresses of the current run.
func (p *process) addr(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.addrs[name]
	if !ok {
		p.t.Fatalf("%s has no %s address: not started", p.name, name)
	}
	return a
}

func (p *process) base() string { return "http://" + p.addr("http") }

// admin is the URL of the process's admin listener.
func (p *process) admin() string { return "http://" + p.addr("admin") }

// grpcAddr is the address of the process's gRPC server.
func (p *process) grpcAddr() string { return p.addr("grpc") }

// gossipAddr is the address of the process's memberlist gossip, or "" when
// it has not started yet.
func (p *process) gossipAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs["gossip"]
}

// start starts the process and waits until it logged its addresses.
func (p *process) start() {
	p.t.Helper()
	p.startAsync()
	p.waitStarted()
}

// startAsync starts the process; waitStarted waits for its addresses.
func (p *process) startAsync() {
	p.t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(p.t, err)
	st, err := f.Stat()
	require.NoError(p.t, err)
	p.offset = st.Size()
	p.mu.Lock()
	p.addrs = nil
	p.mu.Unlock()
	args := p.args
	if p.join != nil {
		if j := p.join(); j != "" {
			args = append(append([]string{}, args...), "-memberlist.join="+j)
		}
	}
	p.cmd = exec.Command(vigilBinary(p.t), args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	require.NoError(p.t, p.cmd.Start())
	p.done = make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
}

// startedLine matches the line a vigil process logs once every service
// runs, with its listen addresses.
var startedLine = regexp.MustCompile(`msg="vigil started"`)

var logField = regexp.MustCompile(`(\w+)=("[^"]*"|\S+)`)

func (p *process) waitStarted() {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if addrs := p.startedAddrs(); addrs != nil {
			p.mu.Lock()
			p.addrs = addrs
			p.mu.Unlock()
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before it started (%s); its log:\n%s", p.name, p.cmd.ProcessState, p.logTail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.t.Fatalf("%s did not start within a minute; its log:\n%s", p.name, p.logTail(40))
}

// startedAddrs reads this run's "vigil started" line, if it is logged.
func (p *process) startedAddrs() map[string]string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(p.offset, 0); err != nil {
		return nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if !startedLine.MatchString(sc.Text()) {
			continue
		}
		addrs := map[string]string{}
		for _, m := range logField.FindAllStringSubmatch(sc.Text(), -1) {
			addrs[m[1]] = strings.Trim(m[2], `"`)
		}
		return addrs
	}
	return nil
}

// kill ends the process with SIGKILL: no WAL flush, no ring leave.
func (p *process) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM and waits for a clean exit.
func (p *process) stop() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not stop within 30s of SIGTERM", p.name)
	}
	require.True(p.t, p.cmd.ProcessState.Success(), "%s exited with %s after SIGTERM", p.name, p.cmd.ProcessState)
}

// gossipOf joins the gossip addresses of the processes' current runs.
func gossipOf(ps ...*process) string {
	var addrs []string
	for _, p := range ps {
		if a := p.gossipAddr(); a != "" {
			addrs = append(addrs, a)
		}
	}
	return strings.Join(addrs, ",")
}
