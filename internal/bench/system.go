package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is one server process of a system.
type Proc struct {
	Name  string
	admin string // base URL of the admin listener, with pprof; empty for Prometheus
	cmd   *exec.Cmd
	log   string
	done  chan struct{}
}

func StartProc(name, dir, bin string, args ...string) (*Proc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &Proc{Name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

// tail is the end of the process's log, for an error message.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Sprintf("--- %s ---\n%s", p.Name, strings.Join(lines, "\n"))
}

func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// system is the processes that together receive the load.
type System struct {
	Procs []*Proc
	URL   string // remote-write URL
}

// QueryBase is the base URL of the system's Prometheus query API (its
// /api/v1/query is below it).
func (s *System) QueryBase() string {
	return strings.TrimSuffix(strings.TrimSuffix(s.URL, "/api/v1/remote_write"), "/api/v1/write")
}

func (s *System) Stop() {
	for _, p := range s.Procs {
		p.Stop()
	}
}

func (s *System) Fail(err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%v", err)
	for _, p := range s.Procs {
		fmt.Fprintf(&b, "\n%s", p.Tail())
	}
	s.Stop()
	return fmt.Errorf("%s", b.String())
}

func (s *System) CPU() ([]time.Duration, error) {
	out := make([]time.Duration, len(s.Procs))
	for i, p := range s.Procs {
		c, err := ProcCPU(p.cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// settledRSS waits, then returns the resident memory of every process, summed.
func (s *System) SettledRSS(settle time.Duration) (int64, error) {
	time.Sleep(settle)
	var sum int64
	for _, p := range s.Procs {
		rss, err := ProcRSS(p.cmd.Process.Pid)
		if err != nil {
			return 0, err
		}
		sum += rss
	}
	return sum, nil
}

func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// vigilArgs are the flags of one Vigil process on loopback: HTTP, gRPC,
// admin and gossip ports from ports[0:4].
func VigilArgs(dir string, ports []int, join string) []string {
	return []string{
		"-data-dir=" + dir, "-log.level=warn",
		"-server.http-listen-address=127.0.0.1", fmt.Sprintf("-server.http-listen-port=%d", ports[0]),
		"-server.grpc-listen-address=127.0.0.1", fmt.Sprintf("-server.grpc-listen-port=%d", ports[1]),
		fmt.Sprintf("-admin.listen-port=%d", ports[2]),
		"-memberlist.bind-addr=127.0.0.1", fmt.Sprintf("-memberlist.bind-port=%d", ports[3]),
		"-memberlist.join=" + join,
		"-ingester.ring.instance-addr=127.0.0.1", "-controlplane.ring.instance-addr=127.0.0.1",
		"-store-gateway.ring.instance-addr=127.0.0.1", "-compactor.ring.instance-addr=127.0.0.1",
	}
}

func StartMonolith(bin, dir string, extra ...string) (*System, error) {
	ports, err := FreePorts(4)
	if err != nil {
		return nil, err
	}
	p, err := StartProc("vigil", dir, bin, append(VigilArgs(dir+"/data", ports, fmt.Sprintf("127.0.0.1:%d", ports[3])), extra...)...)
	if err != nil {
		return nil, err
	}
	p.admin = fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	s := &System{Procs: []*Proc{p}}
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if err := WaitOK(base+"/ready", p); err != nil {
		return nil, s.Fail(err)
	}
	if s.URL, err = CreateWorkspace(base); err != nil {
		return nil, s.Fail(err)
	}
	return s, nil
}

// startCluster starts three ingesters in zones a, b and c and a distributor
// (with the API), RF 3 with zone awareness, on a filesystem bucket.
func StartCluster(bin, dir string, extra ...string) (*System, error) {
	ports, err := FreePorts(16)
	if err != nil {
		return nil, err
	}
	join := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", ports[3], ports[7], ports[11], ports[15])
	common := []string{
		"-storage.filesystem.dir=" + dir + "/bucket",
		"-ingester.ring.replication-factor=3", "-ingester.ring.zone-awareness-enabled=true",
		"-ingester.ring.heartbeat-period=1s",
	}
	common = append(common, extra...)
	s := &System{}
	for i, zone := range []string{"a", "b", "c"} {
		name := "ingester-" + zone
		p, err := StartProc(name, dir, bin, append(append(VigilArgs(dir+"/"+name, ports[4*i:4*i+4], join), common...),
			"-target=ingester", "-ingester.ring.instance-id="+name, "-ingester.ring.instance-zone=zone-"+zone)...)
		if err != nil {
			s.Stop()
			return nil, err
		}
		p.admin = fmt.Sprintf("http://127.0.0.1:%d", ports[4*i+2])
		s.Procs = append(s.Procs, p)
	}
	p, err := StartProc("distributor", dir, bin, append(append(VigilArgs(dir+"/distributor", ports[12:16], join), common...),
		"-target=distributor,api")...)
	if err != nil {
		s.Stop()
		return nil, err
	}
	p.admin = fmt.Sprintf("http://127.0.0.1:%d", ports[14])
	s.Procs = append([]*Proc{p}, s.Procs...)
	for i, p := range s.Procs {
		port := ports[12]
		if i > 0 {
			port = ports[4*(i-1)]
		}
		if err := WaitOK(fmt.Sprintf("http://127.0.0.1:%d/ready", port), p); err != nil {
			return nil, s.Fail(err)
		}
	}
	if err := WaitRing(fmt.Sprintf("http://127.0.0.1:%d/ingester/ring", ports[14]), 3); err != nil {
		return nil, s.Fail(err)
	}
	if s.URL, err = CreateWorkspace(fmt.Sprintf("http://127.0.0.1:%d", ports[12])); err != nil {
		return nil, s.Fail(err)
	}
	return s, nil
}

func StartPrometheus(bin, dir string) (*System, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 15s\n"), 0o644); err != nil {
		return nil, err
	}
	p, err := StartProc("prometheus", dir, bin, "--config.file="+cfg, "--storage.tsdb.path="+dir+"/data",
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[0]), "--web.enable-remote-write-receiver", "--log.level=warn")
	if err != nil {
		return nil, err
	}
	s := &System{Procs: []*Proc{p}, URL: fmt.Sprintf("http://127.0.0.1:%d/api/v1/write", ports[0])}
	if err := WaitOK(fmt.Sprintf("http://127.0.0.1:%d/-/ready", ports[0]), p); err != nil {
		return nil, s.Fail(err)
	}
	return s, nil
}

func WaitOK(url string, p *Proc) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited", p.Name)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s never answered 200", url)
}

func WaitRing(url string, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Count(string(b), "ACTIVE") >= n {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the ring at %s never had %d ACTIVE ingesters", url, n)
}

// createWorkspace creates a workspace and returns its remote-write URL.
func CreateWorkspace(base string) (string, error) {
	resp, err := http.Post(base+"/workspaces", "application/json", bytes.NewReader([]byte(`{"alias":"bench"}`)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		WorkspaceID string `json:"workspaceId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.WorkspaceID == "" {
		return "", fmt.Errorf("CreateWorkspace: HTTP %d, %v", resp.StatusCode, err)
	}
	// The workspace is ACTIVE at once; pushes find it from then on.
	return base + "/workspaces/" + out.WorkspaceID + "/api/v1/remote_write", nil
}

// profile saves a pprof profile of every Vigil process of s into dir,
// named after the variant, the process and what (heap, or profile for CPU).
// A CPU profile covers the next seconds; it runs in the background and
// the returned function waits for it.
func (s *System) Profile(dir, variant, what string, seconds int) func() {
	if dir == "" {
		return func() {}
	}
	done := make(chan struct{}, len(s.Procs))
	n := 0
	for _, p := range s.Procs {
		if p.admin == "" {
			continue
		}
		n++
		go func(p *Proc) {
			defer func() { done <- struct{}{} }()
			url := p.admin + "/debug/pprof/" + what
			if what == "profile" {
				url += fmt.Sprintf("?seconds=%d", seconds)
			}
			resp, err := http.Get(url)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: profile %s: %v\n", p.Name, err)
				return
			}
			defer resp.Body.Close()
			name := strings.NewReplacer(" ", "_", ",", "", "(", "", ")", "", "=", "-").Replace(variant + "-" + p.Name + "." + what)
			f, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: %v\n", err)
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, resp.Body)
		}(p)
	}
	return func() {
		for i := 0; i < n; i++ {
			<-done
		}
	}
}
