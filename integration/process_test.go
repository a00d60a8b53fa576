//go:build e2e

package integration

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// freePort returns a free loopback port below Linux's ephemeral range
// (32768 and up): a port the kernel handed out for listening there may be
// taken by an outgoing connection before the process binds it.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 1000; i++ {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}

// process is one vigil process started from the built binary.
type process struct {
	t         *testing.T
	name      string
	args      []string
	httpPort  int
	grpcPort  int
	adminPort int
	logPath   string
	cmd       *exec.Cmd
	done      chan struct{}
}

func newProcess(t *testing.T, name string, args ...string) *process {
	p := &process{t: t, name: name, httpPort: freePort(t), grpcPort: freePort(t), adminPort: freePort(t)}
	p.logPath = filepath.Join(t.TempDir(), name+".log")
	p.args = append([]string{
		"-server.http-listen-address=127.0.0.1", fmt.Sprintf("-server.http-listen-port=%d", p.httpPort),
		"-server.grpc-listen-address=127.0.0.1", fmt.Sprintf("-server.grpc-listen-port=%d", p.grpcPort),
		fmt.Sprintf("-admin.listen-port=%d", p.adminPort),
		"-log.level=info",
	}, args...)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("--- last log lines of %s ---\n%s", p.name, strings.Join(lines, "\n"))
		}
	})
	return p
}

func (p *process) base() string { return fmt.Sprintf("http://127.0.0.1:%d", p.httpPort) }

// admin is the URL of the process's admin listener.
func (p *process) admin() string { return fmt.Sprintf("http://127.0.0.1:%d", p.adminPort) }

func (p *process) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(p.t, err)
	p.cmd = exec.Command(vigilBinary(p.t), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	require.NoError(p.t, p.cmd.Start())
	p.done = make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
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
