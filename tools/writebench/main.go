// Command writebench measures the write path of Vigil side by side with
// Prometheus 3.16's remote-write receiver, on the same load in one run, and
// prints one table:
//
//   - the monolith (RF 1) and the three-zone cluster (a distributor and three
//     ingesters in zones a, b and c, RF 3, each a separate process), with
//     the cluster's CPU summed over every process and split per process;
//   - samples per server CPU-second while every series gets one sample per
//     request (remote-write 1.0, -batch samples a request, -concurrency
//     writers);
//   - resident memory per active series with a realistic head: every series
//     holds -head-samples samples (480: two hours of 15 s scrapes), RSS read
//     10 s after the load, at two series counts, and the marginal cost of a
//     series between them.
//
// -vigil-before adds the rows of another build, so that a change is measured
// before and after in the same sitting.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-metrics/vigil/internal/bench"
)

type options struct {
	vigil, vigilBefore, prometheus string
	systems                        []string
	series, rounds, batch, writers int
	rssSeries                      [2]int
	headSamples, fillPerSeries     int
	settle                         time.Duration
	keep                           bool
	profileDir                     string
	vigilFlags                     []string
}

func main() {
	var (
		o         options
		systems   string
		rssSeries string
	)
	flag.StringVar(&o.vigil, "vigil", "bin/vigil", "the Vigil binary")
	flag.StringVar(&o.vigilBefore, "vigil-before", "", "another Vigil binary whose rows are added (before a change)")
	flag.StringVar(&o.prometheus, "prometheus", "", "Prometheus 3.16's binary, the reference receiver (empty: no reference row)")
	flag.StringVar(&systems, "systems", "monolith,cluster,prometheus", "systems to measure: monolith, monolith-wal-sync, cluster, prometheus")
	flag.IntVar(&o.series, "series", 50_000, "active series of the CPU phase")
	flag.IntVar(&o.rounds, "rounds", 40, "samples per series in the measured CPU phase")
	flag.IntVar(&o.batch, "batch", 2000, "samples per request")
	flag.IntVar(&o.writers, "concurrency", 4, "requests in flight")
	flag.StringVar(&rssSeries, "rss-series", "50000,150000", "the two series counts of the memory phase, each measured in a fresh system; empty: no memory phase")
	flag.IntVar(&o.headSamples, "head-samples", 480, "samples per series in the head when memory is read (480: two hours of 15 s scrapes)")
	flag.IntVar(&o.fillPerSeries, "fill-samples-per-series", 20, "samples of one series in each request while the head is filled (not measured for CPU)")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "wait after the load before memory is read")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directories and logs")
	vigilFlags := flag.String("vigil-flags", "", "flags added to every Vigil process, space-separated (-ingester.client.grpc-compression=snappy, say)")
	flag.StringVar(&o.profileDir, "profile", "", "save CPU profiles of the first seconds of the measured phase and heap profiles where memory is read into this directory")
	flag.Parse()
	o.systems = strings.Split(systems, ",")
	o.vigilFlags = strings.Fields(*vigilFlags)
	if rssSeries != "" {
		parts := strings.Split(rssSeries, ",")
		if len(parts) != 2 {
			fatalf("-rss-series needs two counts")
		}
		for i, p := range parts {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n <= 0 {
				fatalf("-rss-series: %q is not a series count", p)
			}
			o.rssSeries[i] = n
		}
		if o.rssSeries[1] <= o.rssSeries[0] {
			fatalf("-rss-series: the second count must be larger than the first")
		}
	}
	var results []*result
	for _, name := range o.systems {
		for _, v := range variants(o, name) {
			fmt.Fprintf(os.Stderr, "== %s\n", v.label)
			r, err := measure(o, v)
			if err != nil {
				fatalf("%s: %v", v.label, err)
			}
			results = append(results, r)
		}
	}
	printTable(os.Stdout, o, results)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "writebench: "+format+"\n", args...)
	os.Exit(1)
}

// ingestionLimitFlags keeps a build's ingestion limits in the measured
// path but out of the way: the benchmark sends far more than AMP's 170,000
// samples/s, and its memory phase fills a head of two hours, older than
// AMP's one-hour sample age. Builds from before the limits get none.
func ingestionLimitFlags(bin string) []string {
	help, _ := exec.Command(bin, "-help").CombinedOutput()
	if !bytes.Contains(help, []byte("-validation.past-grace-period")) {
		return nil
	}
	return []string{"-distributor.ingestion-rate-limit=1e12", "-distributor.ingestion-burst-size=1000000000", "-validation.past-grace-period=3h"}
}

// variant is one system to measure, started fresh for every phase.
type variant struct {
	label    string
	start    func(dir string) (*bench.System, error)
	memory   bool // run the memory phase
	baseline bool // the monolith that ratios are taken against
	ref      bool // the reference receiver
}

func variants(o options, name string) []variant {
	builds := []struct{ bin, suffix string }{{o.vigil, ""}}
	if o.vigilBefore != "" {
		builds = append(builds, struct{ bin, suffix string }{o.vigilBefore, " (before)"})
	}
	var out []variant
	for _, b := range builds {
		flags := append(ingestionLimitFlags(b.bin), o.vigilFlags...)
		switch name {
		case "monolith":
			out = append(out, variant{label: "vigil monolith RF1" + b.suffix, memory: true, baseline: b.suffix == "",
				start: func(dir string) (*bench.System, error) { return bench.StartMonolith(b.bin, dir, flags...) }})
		case "monolith-wal-sync":
			out = append(out, variant{label: "vigil monolith RF1, wal-sync=always" + b.suffix,
				start: func(dir string) (*bench.System, error) {
					return bench.StartMonolith(b.bin, dir, append([]string{"-ingester.tsdb.wal-sync=always"}, flags...)...)
				}})
		case "cluster":
			out = append(out, variant{label: "vigil cluster RF3, 3 zones" + b.suffix,
				start: func(dir string) (*bench.System, error) { return bench.StartCluster(b.bin, dir, flags...) }})
		case "prometheus":
			if b.suffix == "" && o.prometheus != "" {
				out = append(out, variant{label: "prometheus 3.16 receiver", memory: true, ref: true,
					start: func(dir string) (*bench.System, error) { return bench.StartPrometheus(o.prometheus, dir) }})
			}
		default:
			fatalf("unknown system %q", name)
		}
	}
	return out
}

// result is what one variant measured.
type result struct {
	variant
	samples     float64
	wall        time.Duration
	cpu         []time.Duration // per process, in procs order
	procs       []string
	rss         [2]int64 // per series count; the sum over the processes
	rssMeasured bool
}

func (r *result) totalCPU() time.Duration {
	var t time.Duration
	for _, c := range r.cpu {
		t += c
	}
	return t
}

func measure(o options, v variant) (*result, error) {
	res := &result{variant: v}
	dir, err := os.MkdirTemp("", "writebench-")
	if err != nil {
		return nil, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	start := time.Now().Add(-time.Duration(o.headSamples) * 15 * time.Second).UnixMilli()
	newLoad := func(s *bench.System, series int) *bench.Load {
		return &bench.Load{URL: s.URL, Series: series, Batch: o.batch, Concurrency: o.writers, Start: start, Step: 15_000,
			Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.writers}}}
	}

	// The CPU phase.
	s, err := v.start(dir + "/cpu")
	if err != nil {
		return nil, err
	}
	defer s.Stop()
	l := newLoad(s, o.series)
	l.Send(l.Encode(0, 1)) // creates every series
	bodies := l.Encode(1, 1+o.rounds)
	cpu0, err := s.CPU()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	profiled := s.Profile(o.profileDir, v.label, "profile", 5)
	l.Send(bodies)
	res.wall = time.Since(t0)
	profiled()
	cpu1, err := s.CPU()
	if err != nil {
		return nil, err
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	res.samples = float64(o.series * o.rounds)
	for i := range cpu1 {
		res.cpu = append(res.cpu, cpu1[i]-cpu0[i])
		res.procs = append(res.procs, s.Procs[i].Name)
	}
	s.Stop()
	if !v.memory || o.rssSeries[0] == 0 {
		return res, nil
	}
	// Memory: a fresh system for each series count, every series filled to
	// the head's samples the same way, so that the two differ only in the
	// number of series.
	for k, series := range o.rssSeries {
		sk, err := v.start(fmt.Sprintf("%s/mem%d", dir, k))
		if err != nil {
			return nil, err
		}
		lk := newLoad(sk, series)
		lk.Fill(0, o.headSamples, o.fillPerSeries)
		res.rss[k], err = sk.SettledRSS(o.settle)
		if err == nil {
			err = lk.Err()
		}
		if err == nil && k == 1 {
			sk.Profile(o.profileDir, v.label, "heap", 0)()
		}
		sk.Stop()
		if err != nil {
			return nil, err
		}
	}
	res.rssMeasured = true
	return res, nil
}

func printTable(out *os.File, o options, results []*result) {
	var mono, prom *result
	for _, r := range results {
		if r.baseline {
			mono = r
		}
		if r.ref {
			prom = r
		}
	}
	fmt.Fprintf(out, "\nRemote-write 1.0, %d series, %d samples a request, %d writers, %d samples per series measured; memory with %d samples per series in the head, read %s after the load.\n\n",
		o.series, o.batch, o.writers, o.rounds, o.headSamples, o.settle)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "system\tsamples/s\tsamples/cpu-s\tcpu-s/M samples\tx monolith cpu\tx prometheus thr.\tRSS B/series @%d\t@%d\tmarginal B/series\t\n", o.rssSeries[0], o.rssSeries[1])
	for _, r := range results {
		cpu := r.totalCPU().Seconds()
		perSec := r.samples / cpu
		xMono, xProm := "-", "-"
		if mono != nil {
			xMono = fmt.Sprintf("%.2f", cpu/mono.totalCPU().Seconds())
		}
		if prom != nil {
			xProm = fmt.Sprintf("%.2f", perSec/(prom.samples/prom.totalCPU().Seconds()))
		}
		rss := "-\t-\t-"
		if r.rssMeasured {
			rss = fmt.Sprintf("%d\t%d\t%d", r.rss[0]/int64(o.rssSeries[0]), r.rss[1]/int64(o.rssSeries[1]),
				(r.rss[1]-r.rss[0])/int64(o.rssSeries[1]-o.rssSeries[0]))
		}
		fmt.Fprintf(w, "%s\t%.0f\t%.0f\t%.2f\t%s\t%s\t%s\t\n", r.label, r.samples/r.wall.Seconds(), perSec, cpu/r.samples*1e6, xMono, xProm, rss)
		if len(r.cpu) > 1 {
			for i, c := range r.cpu {
				fmt.Fprintf(w, "  %s\t\t\t%.2f\t%.0f%%\t\t\t\t\t\n", r.procs[i], c.Seconds()/r.samples*1e6, 100*c.Seconds()/cpu)
			}
		}
	}
	_ = w.Flush()
}
