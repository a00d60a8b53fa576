package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/internal/bench"
	"github.com/vigil-metrics/vigil/pkg/vigil"
)

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkMonolithRemoteWrite drives a monolithic Vigil over HTTP with
// remote-write 1.0 requests of 2000 samples cycling over 100k active series,
// the shape of the project's throughput target. Bodies are encoded before the
// timer starts, so the CPU measured is the server's (plus the HTTP client's
// small share). It reports samples per CPU-second and heap bytes per series,
// side by side with -auth.mode=none and with -auth.mode=sigv4 (requests
// signed before the timer starts, as Prometheus's sigv4 block signs them;
// the server verifies the signature and evaluates the writer's policy).
func BenchmarkMonolithRemoteWrite(b *testing.B) {
	b.Run("auth=none", func(b *testing.B) { benchRemoteWrite(b, false) })
	b.Run("auth=sigv4", func(b *testing.B) { benchRemoteWrite(b, true) })
}

// unlimitedIngestion lifts the workspace's ingestion rate and sample age
// for tests and benchmarks that send faster than AMP's 170,000 samples/s or
// backfill: the limits stay in the path.
var unlimitedIngestion = []string{"-distributor.ingestion-rate-limit=1e12", "-distributor.ingestion-burst-size=1000000000", "-validation.past-grace-period=0"}

func benchRemoteWrite(b *testing.B, sigv4 bool) {
	const seriesTotal, batch = 100_000, 2000
	t := &testing.T{}
	var v *vigil.Vigil
	ws := ""
	if sigv4 {
		v, _ = startSigV4In(t, b.TempDir(), unlimitedIngestion...)
		out, err := keyAdmin.amp(v.BaseURL()).CreateWorkspace(context.Background(), &amp.CreateWorkspaceInput{})
		if err != nil {
			b.Fatal(err)
		}
		ws = *out.WorkspaceId
	} else {
		v = startMonolith(t, b.TempDir(), unlimitedIngestion...)
		ws = createWorkspace(t, v.BaseURL(), "bench")
	}
	defer func() { _ = v.Stop() }()
	url := workspaceURL(v.BaseURL(), ws) + "/api/v1/remote_write"
	perRound := seriesTotal / batch
	rounds := b.N/perRound + 2
	start := time.Now().Add(-30 * time.Minute).UnixMilli() // within AMP's sample age
	bodies := make([][]byte, 0, rounds*perRound)
	for r := 0; r < rounds; r++ {
		for i := 0; i < perRound; i++ {
			req := &prompb.WriteRequest{}
			for j := 0; j < batch; j++ {
				id := i*batch + j
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
					Labels:  bench.NodeSeriesLabels(id),
					Samples: []prompb.Sample{{Timestamp: start + int64(r)*15_000, Value: float64(r)}},
				})
			}
			bodies = append(bodies, encode(b, req))
		}
	}
	headers := make([]http.Header, len(bodies))
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: keyWriter.id, SecretAccessKey: keyWriter.secret}
	for i, body := range bodies {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		if sigv4 {
			sum := sha256.Sum256(body)
			if err := signer.SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		headers[i] = req.Header
	}
	client := &http.Client{}
	sent := 0
	send := func(body []byte) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header = headers[sent]
		sent++
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	before := heapInuse()
	for _, body := range bodies[:perRound] { // create every series
		send(body)
	}
	perSeries := float64(heapInuse()-before) / seriesTotal
	// VIGIL_BENCH_CPUPROFILE=file profiles the timed part only (go test's
	// -cpuprofile would include the encoding of the request bodies).
	if path := os.Getenv("VIGIL_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.ResetTimer()
	cpu := bench.ProcessCPU()
	for i := 0; i < b.N; i++ {
		send(bodies[perRound+i])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/(bench.ProcessCPU()-cpu).Seconds(), "samples/cpu-s")
	b.ReportMetric(perSeries, "heap-B/series")
}
