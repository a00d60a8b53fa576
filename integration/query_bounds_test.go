//go:build e2e

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/internal/bench"
)

// TestSeriesCallOverADayStaysBounded writes 100k series over 24 hours (240
// samples each) into an ingester process, then asks a separate querier
// process for {__name__=~".+"} over the whole day through the series API.
// The querier asks the ingester for labels only: its peak memory stays far
// below what the samples would take (before the fix it received every
// sample, over 1 GB in prompb form, before answering).
func TestSeriesCallOverADayStaysBounded(t *testing.T) {
	const (
		seriesTotal = 100_000
		batch       = 2000
		rounds      = 240
	)
	root := t.TempDir()
	common := func(dir string) []string {
		return []string{"-data-dir=" + filepath.Join(root, dir), "-storage.filesystem.dir=" + filepath.Join(root, "bucket")}
	}
	writer := newProcess(t, "writer", append(append(common("writer"), "-target=distributor,api,ingester",
		"-ingester.ring.instance-id=ingester-1", "-ingester.ring.instance-addr=127.0.0.1"), unlimitedIngestion...)...)
	// The day is read from the ingester alone: the blocks it uploads
	// meanwhile would need a store-gateway, which this test does not run
	// (without one, a query of the store's range fails rather than answer
	// without them).
	quer := newProcess(t, "querier", append(common("querier"), "-target=querier",
		"-querier.query-ingesters-within=0", "-querier.query-store-after=48h")...)
	quer.join = func() string { return gossipOf(writer) }
	writer.start()
	quer.start()
	waitReady(t, writer.base())
	waitReady(t, quer.base())
	waitRingActive(t, quer.admin(), 1)
	ws := createWorkspace(t, writer.base(), "day")
	writeURL := workspaceURL(writer.base(), ws) + "/api/v1/remote_write"

	end := time.Now().Add(-time.Minute).Truncate(time.Minute)
	start := end.Add(-24 * time.Hour)
	step := 24 * time.Hour / rounds
	var labels [][]prompb.Label
	for id := 0; id < seriesTotal; id++ {
		labels = append(labels, bench.NodeSeriesLabels(id))
	}
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
	for r := 0; r < rounds; r++ {
		ts := start.Add(time.Duration(r) * step).UnixMilli()
		var wg sync.WaitGroup
		errs := make(chan string, seriesTotal/batch)
		for b := 0; b < seriesTotal/batch; b++ {
			req := &prompb.WriteRequest{}
			for j := b * batch; j < (b+1)*batch; j++ {
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: labels[j], Samples: []prompb.Sample{{Timestamp: ts, Value: float64(r)}}})
			}
			body := encode(t, req)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, msg := postNoFail(writeURL, rw, body); code != http.StatusNoContent {
					errs <- fmt.Sprintf("HTTP %d: %s", code, msg)
				}
			}()
			if b%4 == 3 {
				wg.Wait()
			}
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatalf("round %d: %s", r, e)
		}
	}

	before := peakRSS(t, quer)
	q := url.Values{"match[]": {`{__name__=~".+"}`}, "start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, workspaceURL(quer.base(), ws)+"/api/v1/series?"+q.Encode(), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct {
		Data []map[string]string `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Len(t, out.Data, seriesTotal)
	peak := peakRSS(t, quer)
	t.Logf("querier peak RSS %d MiB before the series call, %d MiB after", before>>20, peak>>20)
	require.Less(t, peak, int64(512<<20), "the series call took the querier to %d MiB", peak>>20)
	writer.stop()
	quer.stop()
}

// peakRSS is the peak resident memory of a running process (VmHWM).
func peakRSS(t *testing.T, p *process) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
