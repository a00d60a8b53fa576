// Command vigil runs Vigil, a multi-tenant, Prometheus-compatible metrics
// service: all modules in one process by default, or the ones named by -target.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-kit/log/level"
	dslog "github.com/grafana/dskit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-metrics/vigil/pkg/vigil"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := vigil.LoadConfig(args, os.Stdout)
	if err != nil {
		return err
	}
	logger := dslog.NewGoKitWithLevel(cfg.Server.LogLevel, cfg.Server.LogFormat)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	v, err := vigil.New(*cfg, reg, logger)
	if err != nil {
		return err
	}
	if err := v.Start(context.Background()); err != nil {
		if errors.Is(err, vigil.ErrStopped) {
			return nil
		}
		return err
	}
	if v.IsMonolithic() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ws, err := v.EnsureDefaultWorkspace(ctx)
		cancel()
		if err != nil {
			level.Warn(logger).Log("msg", "could not create the default workspace", "err", err)
		} else {
			base := v.BaseURL() + "/workspaces/" + ws.ID
			fmt.Printf("\nVigil is ready. Workspace %q (%s):\n  remote write: %s/api/v1/remote_write\n  query:        %s/api/v1/query\n\n",
				ws.Alias, ws.ID, base, base)
		}
	}
	return v.Wait()
}
