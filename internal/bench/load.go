package bench

import (
	"bytes"
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
)

// Load writes node-exporter-like series to a remote-write 1.0 receiver the
// way a Prometheus remote-write queue does: every request carries the same
// series as the previous request of its writer, so the samples of a series
// arrive in order, from Concurrency writers at once.
type Load struct {
	URL         string
	Header      http.Header // added to every request (X-Scope-OrgID, say)
	Series      int         // active series
	Batch       int         // samples per request
	Concurrency int         // requests in flight
	Start       int64       // timestamp of round 0, in milliseconds
	Step        int64       // milliseconds between rounds
	Client      *http.Client

	failures atomic.Int64
	first    atomic.Value // string: the first failure
}

// requests returns the bodies of rounds [from, to): each request holds
// Batch samples, perSeries consecutive samples of each of its series.
func (l *Load) requests(from, to, perSeries int, emit func(writer int, body []byte)) {
	seriesPerReq := l.Batch / perSeries
	if seriesPerReq < 1 {
		seriesPerReq = 1
	}
	perRound := (l.Series + seriesPerReq - 1) / seriesPerReq
	for r := from; r < to; r += perSeries {
		n := min(perSeries, to-r)
		for i := 0; i < perRound; i++ {
			req := &prompb.WriteRequest{}
			for j := i * seriesPerReq; j < min(l.Series, (i+1)*seriesPerReq); j++ {
				ts := prompb.TimeSeries{Labels: NodeSeriesLabels(j), Samples: make([]prompb.Sample, n)}
				for k := range ts.Samples {
					ts.Samples[k] = prompb.Sample{Timestamp: l.Start + int64(r+k)*l.Step, Value: float64(r + k)}
				}
				req.Timeseries = append(req.Timeseries, ts)
			}
			raw, _ := req.Marshal()
			emit(i%l.Concurrency, snappy.Encode(nil, raw))
		}
	}
}

// Encode returns the requests of rounds [from, to), one sample per series
// each, in the order they are sent, for Send.
func (l *Load) Encode(from, to int) [][]byte {
	var out [][]byte
	l.requests(from, to, 1, func(_ int, b []byte) { out = append(out, b) })
	return out
}

// Send sends bodies made by Encode.
func (l *Load) Send(bodies [][]byte) {
	seriesPerReq := max(l.Batch, 1)
	perRound := (l.Series + seriesPerReq - 1) / seriesPerReq
	l.run(func(emit func(int, []byte)) {
		for k, b := range bodies {
			emit((k%perRound)%l.Concurrency, b)
		}
	})
}

// Fill writes rounds [from, to) encoding as it goes, perSeries samples of
// each series in a request: it builds a head quickly, and its own CPU is not
// measured.
func (l *Load) Fill(from, to, perSeries int) {
	l.run(func(emit func(int, []byte)) { l.requests(from, to, perSeries, emit) })
}

func (l *Load) run(produce func(emit func(int, []byte))) {
	work := make([]chan []byte, l.Concurrency)
	var wg sync.WaitGroup
	for i := range work {
		work[i] = make(chan []byte, 4)
		wg.Add(1)
		go func(ch <-chan []byte) {
			defer wg.Done()
			for b := range ch {
				l.send(b)
			}
		}(work[i])
	}
	produce(func(w int, b []byte) { work[w] <- b })
	for _, ch := range work {
		close(ch)
	}
	wg.Wait()
}

func (l *Load) send(body []byte) {
	req, _ := http.NewRequest(http.MethodPost, l.URL, bytes.NewReader(body))
	for k, v := range l.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	client := l.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		l.fail(err.Error())
		return
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		l.fail(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, msg))
	}
}

func (l *Load) fail(msg string) {
	if l.failures.Add(1) == 1 {
		l.first.Store(msg)
	}
}

// Err reports the requests that failed so far, with the first failure.
func (l *Load) Err() error {
	if n := l.failures.Load(); n > 0 {
		return fmt.Errorf("%d requests failed, the first with %v", n, l.first.Load())
	}
	return nil
}

// ProcCPU returns the user plus system CPU time of process pid.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// ProcRSS returns the resident memory of process pid in bytes.
func ProcRSS(pid int) (int64, error) {
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
