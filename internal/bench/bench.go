// Package bench holds what Vigil's throughput benchmarks share: the CPU time
// of the process and the shape of the series they write.
package bench

import (
	"fmt"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// ProcessCPU returns the user plus system CPU time this process has used.
// Benchmarks divide work by its difference to report per-CPU-second rates,
// which hold on a machine whose other cores are busy.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// NodeSeriesLabels returns the labels, sorted by name, of series number id of
// a node-exporter-like workload: 10 labels, 100k distinct series for ids
// below 100,000.
func NodeSeriesLabels(id int) []prompb.Label {
	return []prompb.Label{
		{Name: "__name__", Value: "node_cpu_seconds_total"},
		{Name: "cluster", Value: "prod-eu"},
		{Name: "cpu", Value: fmt.Sprint(id % 64)},
		{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9100", id/250%250, id%250)},
		{Name: "job", Value: "node"},
		{Name: "mode", Value: "user"},
		{Name: "namespace", Value: "monitoring"},
		{Name: "pod", Value: fmt.Sprintf("node-exporter-%d", id/64)},
		{Name: "region", Value: "eu-west-1"},
		{Name: "zone", Value: "a"},
	}
}
