package vigil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminConfig configures the admin listener: the operator endpoints (ring
// pages and their forget action, /services, /config, pprof) that must never
// be reachable on the public port. It listens on loopback unless a cluster
// binds it wider on purpose.
type AdminConfig struct {
	ListenAddress string `yaml:"listen_address"`
	ListenPort    int    `yaml:"listen_port"`
}

// RegisterFlags registers the admin listener flags.
func (c *AdminConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.ListenAddress, "admin.listen-address", "127.0.0.1", "Address of the admin HTTP listener (ring pages and forget, /services, /config, /debug/pprof). Keep it on loopback or a private network: it has no authentication.")
	f.IntVar(&c.ListenPort, "admin.listen-port", 9019, "Port of the admin HTTP listener. 0: any free port.")
}

// adminServer serves the operator endpoints on their own listener.
type adminServer struct {
	mux *http.ServeMux
	srv *http.Server
	lis net.Listener
}

func newAdminServer(cfg AdminConfig, gatherer prometheus.Gatherer) (*adminServer, error) {
	lis, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenAddress, strconv.Itoa(cfg.ListenPort)))
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &adminServer{
		mux: mux,
		lis: lis,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
	}, nil
}

// Handle registers an operator endpoint.
func (a *adminServer) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

func (a *adminServer) serve() error {
	if err := a.srv.Serve(a.lis); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin listener: %w", err)
	}
	return nil
}

func (a *adminServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
}

// AdminAddr is the address the admin listener listens on.
func (t *Vigil) AdminAddr() string { return t.admin.lis.Addr().String() }

// AdminURL is the URL clients on this machine reach the admin listener at.
func (t *Vigil) AdminURL() string { return localURL(t.AdminAddr()) }
