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
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

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
	perRound := seriesTotal / batch
	start := time.Now().Add(-time.Hour).UnixMilli()
	encodeRound := func(r int) [][]byte {
		out := make([][]byte, 0, perRound)
		for i := 0; i < perRound; i++ {
			req := &prompb.WriteRequest{}
			for j := 0; j < batch; j++ {
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
					Labels:  bench.NodeSeriesLabels(i*batch + j),
					Samples: []prompb.Sample{{Timestamp: start + int64(r)*15_000, Value: float64(r)}},
				})
			}
			raw, _ := req.Marshal()
			out = append(out, snappy.Encode(nil, raw))
		}
		return out
	}
	client := &http.Client{Transport: transport}
	var failures atomic.Int64
	send := func(body []byte) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		if orgID != "" {
			req.Header.Set("X-Scope-OrgID", orgID)
		}
		resp, err := client.Do(req)
		if err != nil {
			failures.Add(1)
			return
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			if failures.Add(1) == 1 {
				fmt.Fprintf(os.Stderr, "loadgen: first failure: HTTP %d: %s", resp.StatusCode, msg)
			}
		}
	}
	// Each worker sends the same batches of series round after round, as a
	// Prometheus remote-write shard does, so that the samples of a series
	// arrive in order.
	sendAll := func(bodies [][]byte) {
		work := make([]chan []byte, concurrency)
		var wg sync.WaitGroup
		for i := range work {
			work[i] = make(chan []byte, 1)
			wg.Add(1)
			go func(ch <-chan []byte) {
				defer wg.Done()
				for b := range ch {
					send(b)
				}
			}(work[i])
		}
		for k, b := range bodies {
			work[(k%perRound)%concurrency] <- b
		}
		for _, ch := range work {
			close(ch)
		}
		wg.Wait()
	}

	rss0, err := procRSS(pid)
	if err != nil {
		return err
	}
	// Warm-up: create every series.
	sendAll(encodeRound(0))
	var bodies [][]byte
	for r := 1; r <= rounds; r++ {
		bodies = append(bodies, encodeRound(r)...)
	}
	cpu0, err := procCPU(pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	sendAll(bodies)
	elapsed := time.Since(t0)
	cpu1, err := procCPU(pid)
	if err != nil {
		return err
	}
	samples := float64(len(bodies) * batch)
	fmt.Printf("requests %d, samples %.0f, failures %d, wall %.2fs, %.0f samples/s\n", len(bodies), samples, failures.Load(), elapsed.Seconds(), samples/elapsed.Seconds())
	if pid > 0 {
		rss, err := procRSS(pid)
		if err != nil {
			return err
		}
		fmt.Printf("server cpu %.2fs, %.0f samples per server cpu-second\n", (cpu1 - cpu0).Seconds(), samples/(cpu1-cpu0).Seconds())
		fmt.Printf("server rss %.0f MiB (%.0f MiB before the load): %.0f bytes per active series, %.0f above the idle process\n",
			float64(rss)/(1<<20), float64(rss0)/(1<<20), float64(rss)/float64(seriesTotal), float64(rss-rss0)/float64(seriesTotal))
	}
	if failures.Load() > 0 {
		return fmt.Errorf("%d requests failed", failures.Load())
	}
	return nil
}

// procCPU returns the user plus system CPU time of a process.
func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// procRSS returns the resident memory of a process in bytes.
func procRSS(pid int) (int64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
