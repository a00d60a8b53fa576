package bench

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// NodeExporterData returns node-exporter-like series of the given number of
// hosts, scraped every 15 s for n scrapes from start; Prometheus snaps
// scrape timestamps to the interval, so one scrape in ten is a few
// milliseconds late. Per host, 572 series in the proportions of a real node
// exporter: 64 CPU-time counters (8 CPUs, 8 modes) growing by ticks of 10 ms;
// 40 memory gauges of bytes moving by pages at one scrape in four; 48
// network counters (4 devices), byte and packet ones growing at every
// scrape, error ones rarely; 20 filesystem gauges that hardly change; 60
// counters of rare events; 40 process gauges changing at every scrape; 300
// series that never change (sizes, limits, info and build metrics). The
// same seed gives the same data.
func NodeExporterData(hosts, n int, start time.Time, seed uint64) []prompb.TimeSeries {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out []prompb.TimeSeries
	for h := 0; h < hosts; h++ {
		instance := fmt.Sprintf("10.1.%d.%d:9100", h/250, h%250)
		ts := make([]int64, n)
		for i := range ts {
			ts[i] = start.Add(time.Duration(i) * 15 * time.Second).UnixMilli()
			if rng.IntN(10) == 0 {
				ts[i] += 1 + int64(rng.IntN(20))
			}
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
						return float64(rng.IntN(100_000_000)) / 100
					}
					return prev + float64(int(1500*busy*(0.5+rng.Float64())))/100
				})
			}
		}
		for g := 0; g < 40; g++ {
			base := float64(rng.IntN(16<<20)) * 4096
			add(fmt.Sprintf("node_memory_metric%02d_bytes", g), nil, func(i int, prev float64) float64 {
				if i == 0 || rng.IntN(4) == 0 {
					return base + float64(rng.IntN(512))*4096
				}
				return prev
			})
		}
		for d := 0; d < 4; d++ {
			dev := []string{"eth0", "eth1", "lo", "docker0"}[d]
			for _, kind := range []string{"receive_bytes", "transmit_bytes", "receive_packets", "transmit_packets", "receive_errs", "transmit_errs",
				"receive_drop", "transmit_drop", "receive_fifo", "transmit_fifo", "receive_multicast", "transmit_colls"} {
				rate := map[string]float64{"receive_bytes": 200_000, "transmit_bytes": 150_000, "receive_packets": 300, "transmit_packets": 250}[kind]
				add("node_network_"+kind+"_total", []prompb.Label{{Name: "device", Value: dev}}, func(i int, prev float64) float64 {
					switch {
					case i == 0 && rate == 0:
						return float64(rng.IntN(10))
					case i == 0:
						return float64(rng.IntN(1 << 40))
					case rate == 0:
						if rng.IntN(200) == 0 {
							return prev + 1
						}
						return prev
					}
					return prev + float64(int(15*rate*(0.5+rng.Float64())))
				})
			}
		}
		for f := 0; f < 20; f++ {
			size := float64(rng.IntN(1<<28)) * 4096
			add(fmt.Sprintf("node_filesystem_metric%02d", f), []prompb.Label{{Name: "device", Value: "sda"}, {Name: "fstype", Value: "ext4"}, {Name: "mountpoint", Value: fmt.Sprintf("/mnt/%d", f%5)}}, func(i int, prev float64) float64 {
				if i == 0 || rng.IntN(40) == 0 {
					return size - float64(rng.IntN(1<<20))*4096
				}
				return prev
			})
		}
		for c := 0; c < 60; c++ {
			add(fmt.Sprintf("node_event_metric%02d_total", c), nil, func(i int, prev float64) float64 {
				if i > 0 && rng.IntN(50) == 0 {
					return prev + 1
				}
				return prev
			})
		}
		for p := 0; p < 40; p++ {
			base := rng.IntN(1 << 24)
			add(fmt.Sprintf("process_metric%02d", p), nil, func(int, float64) float64 { return float64(base + rng.IntN(1<<12)) })
		}
		for c := 0; c < 300; c++ {
			value := float64(rng.IntN(1 << 34))
			add(fmt.Sprintf("node_constant_metric%03d", c), nil, func(int, float64) float64 { return value })
		}
	}
	return out
}
