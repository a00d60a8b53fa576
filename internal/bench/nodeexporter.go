package bench

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// NodeExporterData returns node-exporter-like series of the given number of
// hosts, scraped every 15 s with a few milliseconds of jitter for n scrapes
// from start: per host 64 CPU-time counters (8 CPUs, 8 modes) growing by
// fractional seconds, 20 memory gauges of bytes moving by pages, 12 network
// byte and packet counters, 4 filesystem gauges that hardly change. The
// same seed gives the same data.
func NodeExporterData(hosts, n int, start time.Time, seed uint64) []prompb.TimeSeries {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out []prompb.TimeSeries
	for h := 0; h < hosts; h++ {
		instance := fmt.Sprintf("10.1.%d.%d:9100", h/250, h%250)
		// One scrape timeline per host, as a Prometheus scrape loop does.
		ts := make([]int64, n)
		for i := range ts {
			ts[i] = start.Add(time.Duration(i)*15*time.Second).UnixMilli() + int64(rng.IntN(5))
		}
		add := func(name string, extra []prompb.Label, value func(i int, prev float64) float64) {
			ls := append([]prompb.Label{{Name: "__name__", Value: name}, {Name: "instance", Value: instance}, {Name: "job", Value: "node"}}, extra...)
			sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
			samples := make([]prompb.Sample, n)
			v := 0.0
			for i := range samples {
				v = value(i, v)
				samples[i] = prompb.Sample{Timestamp: ts[i], Value: v}
			}
			out = append(out, prompb.TimeSeries{Labels: ls, Samples: samples})
		}
		modes := []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
		for cpu := 0; cpu < 8; cpu++ {
			for m, mode := range modes {
				busy := []float64{0.6, 0.02, 0.001, 0.0, 0.01, 0.0, 0.1, 0.25}[m]
				add("node_cpu_seconds_total", []prompb.Label{{Name: "cpu", Value: fmt.Sprint(cpu)}, {Name: "mode", Value: mode}}, func(i int, prev float64) float64 {
					if i == 0 {
						return float64(rng.IntN(1_000_000)) + rng.Float64()
					}
					return prev + 15*busy*(0.5+rng.Float64())
				})
			}
		}
		for g := 0; g < 20; g++ {
			base := float64(rng.IntN(64<<30)) / 4096 * 4096
			add(fmt.Sprintf("node_memory_metric%02d_bytes", g), nil, func(i int, prev float64) float64 {
				if i == 0 || rng.IntN(4) != 0 {
					return base + float64(rng.IntN(512))*4096
				}
				return prev
			})
		}
		for d := 0; d < 2; d++ {
			dev := []string{"eth0", "lo"}[d]
			for _, kind := range []string{"receive_bytes", "transmit_bytes", "receive_packets", "transmit_packets", "receive_errs", "transmit_errs"} {
				rate := map[string]float64{"receive_bytes": 200_000, "transmit_bytes": 150_000, "receive_packets": 300, "transmit_packets": 250}[kind]
				add("node_network_"+kind+"_total", []prompb.Label{{Name: "device", Value: dev}}, func(i int, prev float64) float64 {
					if i == 0 {
						return float64(rng.IntN(1 << 40))
					}
					return prev + float64(int(15*rate*(0.5+rng.Float64())))
				})
			}
		}
		for _, mp := range []string{"/", "/boot", "/var", "/home"} {
			size := float64(rng.IntN(1<<40)) / 4096 * 4096
			add("node_filesystem_avail_bytes", []prompb.Label{{Name: "device", Value: "sda"}, {Name: "fstype", Value: "ext4"}, {Name: "mountpoint", Value: mp}}, func(i int, prev float64) float64 {
				if i == 0 || rng.IntN(40) == 0 {
					return size - float64(rng.IntN(1<<20))*4096
				}
				return prev
			})
		}
	}
	return out
}
