// Command loadgen drives a Vigil (or any remote-write receiver) with Prometheus
// remote-write 1.0 requests and, given the receiver's PID, reports the
// receiver's own CPU and memory: samples per server CPU-second and resident
// memory per active series, the figures of the project's throughput target.
//
//	loadgen -url http://127.0.0.1:9009/workspaces/ws-.../api/v1/remote_write -pid 1234
//
// Request bodies are encoded before the measured phase, so the load
// generator's own CPU stays low and is not counted.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/sigv4"

	"github.com/vigil-metrics/vigil/internal/bench"
)

func main() {
	var (
		url         = flag.String("url", "", "remote-write URL")
		pid         = flag.Int("pid", 0, "PID of the receiver, to read its CPU time and RSS from /proc (0: not measured)")
		seriesTotal = flag.Int("series", 100_000, "active series")
		batch       = flag.Int("batch", 2000, "samples per request (one per series)")
		rounds      = flag.Int("rounds", 20, "times every series gets a sample in the measured phase")
		concurrency = flag.Int("concurrency", 4, "requests in flight")
		orgID       = flag.String("org-id", "", "X-Scope-OrgID header, for the Mimir-compatible path")
		sigv4Key    = flag.String("sigv4-access-key", "", "sign every request with AWS SigV4 (service aps) with this access key, as Prometheus's sigv4 block does")
		sigv4Secret = flag.String("sigv4-secret-key", "", "secret of -sigv4-access-key")
		sigv4Region = flag.String("sigv4-region", "us-east-1", "region of the SigV4 signature")
	)
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -url is required")
		os.Exit(2)
	}
	var transport http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: *concurrency}
	if *sigv4Key != "" {
		rt, err := sigv4.NewSigV4RoundTripper(&sigv4.SigV4Config{Region: *sigv4Region, AccessKey: *sigv4Key, SecretKey: config.Secret(*sigv4Secret)}, transport)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		transport = rt
	}
	if err := run(*url, *pid, *seriesTotal, *batch, *rounds, *concurrency, *orgID, transport); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(url string, pid, seriesTotal, batch, rounds, concurrency int, orgID string, transport http.RoundTripper) error {
	l := &bench.Load{
		URL: url, Series: seriesTotal, Batch: batch, Concurrency: concurrency,
		// Within AMP's one-hour sample age however many rounds run.
		Start: time.Now().Add(-30 * time.Minute).UnixMilli(), Step: 15_000,
		Client: &http.Client{Transport: transport}, Header: http.Header{},
	}
	if orgID != "" {
		l.Header.Set("X-Scope-OrgID", orgID)
	}
	var rss0 int64
	if pid > 0 {
		var err error
		if rss0, err = bench.ProcRSS(pid); err != nil {
			return err
		}
	}
	// Warm-up: create every series.
	l.Send(l.Encode(0, 1))
	bodies := l.Encode(1, rounds+1)
	cpu0, _ := procCPU(pid)
	t0 := time.Now()
	l.Send(bodies)
	elapsed := time.Since(t0)
	cpu1, err := procCPU(pid)
	if err != nil {
		return err
	}
	samples := float64(rounds * seriesTotal)
	fmt.Printf("requests %d, samples %.0f, wall %.2fs, %.0f samples/s\n", len(bodies), samples, elapsed.Seconds(), samples/elapsed.Seconds())
	if pid > 0 {
		rss, err := bench.ProcRSS(pid)
		if err != nil {
			return err
		}
		fmt.Printf("server cpu %.2fs, %.0f samples per server cpu-second\n", (cpu1 - cpu0).Seconds(), samples/(cpu1-cpu0).Seconds())
		fmt.Printf("server rss %.0f MiB (%.0f MiB before the load): %.0f bytes per active series, %.0f above the idle process\n",
			float64(rss)/(1<<20), float64(rss0)/(1<<20), float64(rss)/float64(seriesTotal), float64(rss-rss0)/float64(seriesTotal))
	}
	return l.Err()
}

func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	return bench.ProcCPU(pid)
}
