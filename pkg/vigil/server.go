package vigil

// Server plumbing: the public and admin listeners run as one service that
// stops last, and the line that tells where a process listens.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/server"
	"github.com/grafana/dskit/services"
)

// otherServices are the services the server must outlive: it stops last so
// that the others can finish in-flight requests and leave the ring.
func (t *Vigil) otherServices() []services.Service {
	var out []services.Service
	for name, s := range t.ServiceMap {
		if name != Server {
			out = append(out, s)
		}
	}
	return out
}

// noSignals is the dskit server's signal handler: it ignores signals, so that
// the server's Run returns only when the server is shut down.
type noSignals struct {
	once sync.Once
	done chan struct{}
}

func newNoSignals() *noSignals { return &noSignals{done: make(chan struct{})} }

func (h *noSignals) Loop() { <-h.done }
func (h *noSignals) Stop() { h.once.Do(func() { close(h.done) }) }

// newServerService runs the dskit server and the admin listener as a
// service. It shuts them down only after every other service has stopped, so
// that those can finish in-flight requests and leave the ring first.
func newServerService(srv *server.Server, admin *adminServer, others func() []services.Service) services.Service {
	done := make(chan error, 2)
	running := func(ctx context.Context) error {
		go func() { done <- srv.Run() }()
		go func() { done <- admin.serve() }()
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			if err == nil {
				err = fmt.Errorf("server stopped unexpectedly")
			}
			return err
		}
	}
	stopping := func(_ error) error {
		for _, s := range others() {
			_ = s.AwaitTerminated(context.Background())
		}
		admin.shutdown()
		srv.Shutdown()
		srv.Stop()
		return nil
	}
	return services.NewBasicService(nil, running, stopping)
}

func (t *Vigil) logStarted() {
	keyvals := []any{"msg", "vigil started", "targets", t.Cfg.Target.String(), "http", t.Server.HTTPListenAddr(), "grpc", t.Server.GRPCListenAddr(), "admin", t.AdminAddr()}
	if addr := t.GossipAddr(); addr != "" {
		keyvals = append(keyvals, "gossip", addr)
	}
	level.Info(t.Logger).Log(keyvals...)
}

// GossipAddr is the address the memberlist gossip listens on once it runs
// ("" before, or in a process without rings): with -memberlist.bind-port=0
// the port the kernel chose.
func (t *Vigil) GossipAddr() string {
	if t.MemberlistKV == nil || len(t.Cfg.Memberlist.TCPTransport.BindAddrs) == 0 {
		return ""
	}
	kv, err := t.MemberlistKV.GetMemberlistKV()
	if err != nil || kv.State() != services.Running {
		return ""
	}
	return net.JoinHostPort(t.Cfg.Memberlist.TCPTransport.BindAddrs[0], strconv.Itoa(kv.GetListeningPort()))
}
