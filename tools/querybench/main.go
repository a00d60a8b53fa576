// Command querybench measures, side by side on one machine, what a
// dashboard mix of PromQL queries costs Vigil and Prometheus holding the
// same data: node-exporter and Kubernetes-like series, an hour at 15 s,
// written to each by remote write 1.0; then the mix (rate, sum by,
// histogram_quantile, topk; range queries over the hour at step 30 s and
// instant queries) run at each concurrency for a fixed time. One table:
// CPU-seconds of the server processes per query, p50 and p99 latency and
// queries per second, and the CPU per query as a multiple of Prometheus's.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/internal/bench"
)

// query is one query of the mix.
type query struct {
	expr    string
	isRange bool // a range query over the data's hour at step 30 s
}

// mix is what a node-exporter and a Kubernetes API-server dashboard ask.
var mix = []query{
	{`sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))`, true},
	{`avg by (mode) (rate(node_cpu_seconds_total[5m]))`, true},
	{`topk(5, sum by (instance) (rate(node_network_receive_bytes_total[5m])))`, true},
	{`histogram_quantile(0.99, sum by (le, verb) (rate(apiserver_request_duration_seconds_bucket[5m])))`, true},
	{`sum by (verb) (rate(apiserver_request_duration_seconds_count[5m]))`, true},
	{`sum(rate(apiserver_request_duration_seconds_sum[5m])) / sum(rate(apiserver_request_duration_seconds_count[5m]))`, true},
	{`sum by (instance) (node_memory_metric00_bytes) / 1e9`, false},
	{`topk(10, rate(node_network_transmit_bytes_total[5m]))`, false},
	{`histogram_quantile(0.9, sum by (le) (rate(apiserver_request_duration_seconds_bucket[5m])))`, false},
}

// variant is one system of the table.
type variant struct {
	name  string
	start func(dir string) (*bench.System, error)
}

type variantFlags []string

func (v *variantFlags) String() string     { return strings.Join(*v, " ") }
func (v *variantFlags) Set(s string) error { *v = append(*v, s); return nil }

func main() {
	var (
		vigil, vigilBefore, prometheus, dir, conc, profileDir string
		hosts, apiservers                                     int
		cellTime                                              time.Duration
		extra                                                 variantFlags
	)
	flag.StringVar(&vigil, "vigil", "bin/vigil", "the vigil binary")
	flag.StringVar(&vigilBefore, "vigil-before", "", "another vigil binary (a build before a change) to measure beside (empty: none)")
	flag.StringVar(&prometheus, "prometheus", "", "a Prometheus binary to compare with (empty: none)")
	flag.StringVar(&dir, "dir", "", "working directory (empty: a temporary one, removed)")
	flag.StringVar(&conc, "concurrency", "1,4", "the concurrencies to run the mix at, comma-separated")
	flag.IntVar(&hosts, "hosts", 150, "node-exporter hosts (572 series each)")
	flag.IntVar(&apiservers, "apiservers", 450, "API server instance and resource pairs (32 histogram series each)")
	flag.DurationVar(&cellTime, "duration", 20*time.Second, "how long the mix runs at each concurrency")
	flag.StringVar(&profileDir, "profile-dir", "", "save a CPU profile of each Vigil system's first concurrency here (empty: none)")
	flag.Var(&extra, "variant", "an extra Vigil monolith to measure: name=flag,flag,... (repeatable)")
	flag.Parse()
	if dir == "" {
		d, err := os.MkdirTemp("", "querybench")
		if err != nil {
			fatalf("%v", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var concurrencies []int
	for _, s := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fatalf("bad -concurrency %q", conc)
		}
		concurrencies = append(concurrencies, n)
	}
	// Vigil takes the data as fast as it comes, and samples up to an hour
	// old: the limits stay in the path.
	limits := []string{"-distributor.ingestion-rate-limit=1e12", "-distributor.ingestion-burst-size=1000000000", "-validation.past-grace-period=0"}
	variants := []variant{{"vigil", func(d string) (*bench.System, error) { return bench.StartMonolith(vigil, d, limits...) }}}
	for _, e := range extra {
		name, flags, ok := strings.Cut(e, "=")
		if !ok {
			fatalf("bad -variant %q: want name=flag,flag", e)
		}
		args := append(slices.Clone(limits), strings.Split(flags, ",")...)
		variants = append(variants, variant{name, func(d string) (*bench.System, error) { return bench.StartMonolith(vigil, d, args...) }})
	}
	if vigilBefore != "" {
		variants = append(variants, variant{"vigil-before", func(d string) (*bench.System, error) { return bench.StartMonolith(vigilBefore, d, limits...) }})
	}
	if prometheus != "" {
		variants = append(variants, variant{"prometheus", func(d string) (*bench.System, error) { return bench.StartPrometheus(prometheus, d) }})
	}

	// The hour ends a quarter of an hour ago: past the results cache's
	// freshness window (10 minutes), as a dashboard's past hour is.
	end := time.Now().Add(-15 * time.Minute).Truncate(time.Minute)
	// Just under an hour: a TSDB head takes samples up to an hour older
	// than its newest, and the series are written one after the other.
	const samples = 237
	start := end.Add(-(samples - 1) * 15 * time.Second)
	data := append(bench.NodeExporterData(hosts, samples, start, 1), apiServerData(apiservers, samples, start)...)
	fmt.Fprintf(os.Stderr, "querybench: %d series, %d samples each, %s to %s\n", len(data), samples, start.Format(time.TimeOnly), end.Format(time.TimeOnly))

	var rows []row
	var answers []map[string]int // per variant: series per query, to compare
	for _, v := range variants {
		s, err := v.start(filepath.Join(dir, v.name))
		if err != nil {
			fatalf("%s: %v", v.name, err)
		}
		if err := write(s.URL, data); err != nil {
			fatalf("%s: %v", v.name, s.Fail(err))
		}
		time.Sleep(2 * time.Second) // the last writes settle
		r := runner{base: s.QueryBase(), start: start, end: end}
		seen, err := r.check()
		if err != nil {
			fatalf("%s: %v", v.name, s.Fail(err))
		}
		answers = append(answers, seen)
		for i, c := range concurrencies {
			profiled := func() {}
			if i == 0 {
				profiled = s.Profile(profileDir, v.name, "profile", int(cellTime.Seconds()))
			}
			cpu0, err := s.CPU()
			if err != nil {
				fatalf("%v", err)
			}
			lat, errs := r.run(c, cellTime)
			profiled()
			cpu1, err := s.CPU()
			if err != nil {
				fatalf("%v", err)
			}
			var cpu time.Duration
			for i := range cpu1 {
				cpu += cpu1[i] - cpu0[i]
			}
			rows = append(rows, row{system: v.name, conc: c, queries: len(lat), errors: errs, cpu: cpu, lat: lat, took: cellTime})
		}
		s.Stop()
	}
	for i := 1; i < len(answers); i++ {
		for q, n := range answers[0] {
			if answers[i][q] != n {
				fmt.Fprintf(os.Stderr, "querybench: %s answers %d series to %s, %s %d\n", variants[i].name, answers[i][q], q, variants[0].name, n)
			}
		}
	}
	printTable(rows)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "querybench: "+format+"\n", args...)
	os.Exit(1)
}

// apiServerData is Kubernetes API-server request-duration histograms: for
// each of pairs instance and resource pairs and two verbs, 14 buckets (le),
// the sum and the count (32 series per pair), n samples at 15 s from start.
func apiServerData(pairs, n int, start time.Time) []prompb.TimeSeries {
	les := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf"}
	var out []prompb.TimeSeries
	for p := 0; p < pairs; p++ {
		for _, verb := range []string{"GET", "LIST"} {
			base := []prompb.Label{
				{Name: "instance", Value: fmt.Sprintf("apiserver-%d:6443", p%3)},
				{Name: "job", Value: "apiserver"},
				{Name: "resource", Value: fmt.Sprintf("resource-%d", p/3)},
				{Name: "verb", Value: verb},
			}
			series := func(name string, extra []prompb.Label, per func(i int) float64) {
				ls := append([]prompb.Label{{Name: "__name__", Value: name}}, base...)
				ls = append(ls, extra...)
				slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
				ts := prompb.TimeSeries{Labels: ls, Samples: make([]prompb.Sample, n)}
				for i := range ts.Samples {
					ts.Samples[i] = prompb.Sample{Timestamp: start.Add(time.Duration(i) * 15 * time.Second).UnixMilli(), Value: per(i)}
				}
				out = append(out, ts)
			}
			rate := float64(1 + p%7)
			for k, le := range les {
				share := float64(k+1) / float64(len(les))
				series("apiserver_request_duration_seconds_bucket", []prompb.Label{{Name: "le", Value: le}}, func(i int) float64 { return float64(i) * 15 * rate * share })
			}
			series("apiserver_request_duration_seconds_count", nil, func(i int) float64 { return float64(i) * 15 * rate })
			series("apiserver_request_duration_seconds_sum", nil, func(i int) float64 { return float64(i) * 15 * rate * 0.08 })
		}
	}
	return out
}

// write sends data by remote write 1.0, 100 series with all their samples
// per request, four requests at once.
func write(url string, data []prompb.TimeSeries) error {
	const perRequest, writers = 100, 4
	work := make(chan []byte)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/x-protobuf")
				req.Header.Set("Content-Encoding", "snappy")
				req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					msg, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("remote write: HTTP %d: %s", resp.StatusCode, msg)
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := 0; i < len(data); i += perRequest {
		raw, err := (&prompb.WriteRequest{Timeseries: data[i:min(i+perRequest, len(data))]}).Marshal()
		if err != nil {
			return err
		}
		work <- snappy.Encode(nil, raw)
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// runner runs the mix against one system's query API.
type runner struct {
	base       string
	start, end time.Time
}

func (r runner) do(q query) (int, error) {
	form := url.Values{"query": {q.expr}}
	path := "/api/v1/query"
	if q.isRange {
		path = "/api/v1/query_range"
		form.Set("start", strconv.FormatInt(r.start.Unix(), 10))
		form.Set("end", strconv.FormatInt(r.end.Unix(), 10))
		form.Set("step", "30")
	} else {
		form.Set("time", strconv.FormatInt(r.end.Unix(), 10))
	}
	resp, err := http.PostForm(r.base+path, form)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("%s: HTTP %d: %v", q.expr, resp.StatusCode, err)
	}
	if out.Status != "success" {
		return 0, fmt.Errorf("%s: HTTP %d: %s", q.expr, resp.StatusCode, out.Error)
	}
	return len(out.Data.Result), nil
}

// check runs each query once and returns how many series each answered.
func (r runner) check() (map[string]int, error) {
	seen := map[string]int{}
	for _, q := range mix {
		n, err := r.do(q)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no series", q.expr)
		}
		seen[q.expr] = n
	}
	return seen, nil
}

// run runs the mix from conc clients for d and returns every query's
// latency and the number of failed queries.
func (r runner) run(conc int, d time.Duration) ([]time.Duration, int) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	for c := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				_, err := r.do(mix[i%len(mix)])
				took := time.Since(t0)
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lat = append(lat, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, errs
}

type row struct {
	system          string
	conc            int
	queries, errors int
	cpu             time.Duration
	lat             []time.Duration
	took            time.Duration
}

func (r row) cpuPerQuery() float64 {
	if r.queries == 0 {
		return 0
	}
	return r.cpu.Seconds() / float64(r.queries)
}

func quantile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func printTable(rows []row) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "system\tconcurrency\tqueries\terrors\tcpu-ms/query\tx prometheus cpu\tp50 ms\tp99 ms\tqueries/s\t")
	promCPU := map[int]float64{}
	for _, r := range rows {
		if r.system == "prometheus" {
			promCPU[r.conc] = r.cpuPerQuery()
		}
	}
	for _, r := range rows {
		ratio := "-"
		if p := promCPU[r.conc]; p > 0 {
			ratio = fmt.Sprintf("%.2f", r.cpuPerQuery()/p)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%.1f\t%s\t%.1f\t%.1f\t%.1f\t\n", r.system, r.conc, r.queries, r.errors, r.cpuPerQuery()*1000, ratio,
			float64(quantile(r.lat, 0.5).Microseconds())/1000, float64(quantile(r.lat, 0.99).Microseconds())/1000, float64(r.queries)/r.took.Seconds())
	}
	_ = w.Flush()
}
