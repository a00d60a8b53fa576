//go:build e2e

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
)

// corpusVigil gives promqltest a storage and a query engine that both go
// through Vigil's public HTTP API: what promqltest loads is remote-written
// (1.0) into a workspace, and what it evaluates is asked of that workspace's
// query API and decoded from the JSON answer.
//
// Workspaces are reused between evaluations: each holds the data of a
// sequence of load commands, identified by their text, so that an
// evaluation whose loads were already written reads them where they are.
type corpusVigil struct {
	base  string
	empty string // a workspace nothing is written to

	mu     sync.Mutex
	byKey  map[string]string // joined load texts -> workspace
	nextID int
}

func (c *corpusVigil) workspace(t testing.TB) string {
	c.mu.Lock()
	c.nextID++
	n := c.nextID
	c.mu.Unlock()
	return createWorkspace(t.(*testing.T), c.base, fmt.Sprintf("corpus-%d", n))
}

// newStorage returns promqltest's storage factory for an evaluation whose
// input starts with the load commands loads.
func (c *corpusVigil) newStorage(loads []string) func(testing.TB) storage.Storage {
	return func(t testing.TB) storage.Storage { return &corpusStorage{c: c, t: t, loads: loads} }
}

// corpusStorage is one test's storage: a workspace, created when the first
// load is committed. Its queriers are empty: promqltest reads through the
// engine only.
type corpusStorage struct {
	storage.Appendable // promqltest appends through AppenderV2 only

	c         *corpusVigil
	t         testing.TB
	loads     []string
	committed int
	ws        string
}

func (s *corpusStorage) Querier(int64, int64) (storage.Querier, error) {
	return storage.NoopQuerier(), nil
}

func (s *corpusStorage) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) {
	return storage.NoopChunkedQuerier(), nil
}

func (s *corpusStorage) StartTime() (int64, error) { return 0, nil }
func (s *corpusStorage) Close() error              { return nil }

func (s *corpusStorage) AppenderV2(context.Context) storage.AppenderV2 {
	return &corpusAppender{s: s, series: map[uint64]*prompb.TimeSeries{}}
}

// queryWorkspace is the workspace queries of this storage go to.
func (s *corpusStorage) queryWorkspace() string {
	if s.ws != "" {
		return s.ws
	}
	return s.c.empty
}

// corpusAppender buffers a load command's samples and remote-writes them
// on Commit, unless a workspace already holds the same loads.
type corpusAppender struct {
	s      *corpusStorage
	series map[uint64]*prompb.TimeSeries
}

// Append keeps the sample; a start timestamp (st) has no place in remote
// write 1.0 and is dropped.
func (a *corpusAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	hash := ls.Hash()
	ts, ok := a.series[hash]
	if !ok {
		ts = &prompb.TimeSeries{}
		ls.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		a.series[hash] = ts
	}
	switch {
	case fh != nil:
		ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(t, fh))
	case h != nil:
		ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(t, h))
	default:
		ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t, Value: v})
	}
	return storage.SeriesRef(hash), nil
}

func (a *corpusAppender) Rollback() error { return nil }

func (a *corpusAppender) Commit() error {
	s, c := a.s, a.s.c
	s.committed++
	if s.committed > len(s.loads) {
		return fmt.Errorf("more commits (%d) than load commands (%d)", s.committed, len(s.loads))
	}
	key := strings.Join(s.loads[:s.committed], "\n\n")
	c.mu.Lock()
	ws, done := c.byKey[key]
	c.mu.Unlock()
	if done {
		s.ws = ws
		return nil
	}
	if s.ws == "" {
		s.ws = c.workspace(s.t)
	}
	req := &prompb.WriteRequest{}
	for _, ts := range a.series {
		sort.Slice(ts.Samples, func(i, j int) bool { return ts.Samples[i].Timestamp < ts.Samples[j].Timestamp })
		sort.Slice(ts.Histograms, func(i, j int) bool { return ts.Histograms[i].Timestamp < ts.Histograms[j].Timestamp })
		req.Timeseries = append(req.Timeseries, *ts)
	}
	if len(req.Timeseries) > 0 {
		raw, err := req.Marshal()
		if err != nil {
			return err
		}
		if _, err := remoteWriter(s.t.(*testing.T), workspaceURL(c.base, s.ws)+"/api/v1/remote_write").Store(context.Background(), snappy.Encode(nil, raw), 0); err != nil {
			return fmt.Errorf("remote write: %w", err)
		}
	}
	c.mu.Lock()
	c.byKey[key] = s.ws
	c.mu.Unlock()
	return nil
}

// corpusEngine is a promql.QueryEngine that asks Vigil.
type corpusEngine struct{ client *http.Client }

func (e corpusEngine) NewInstantQuery(_ context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	form := url.Values{"query": {qs}, "time": {formatTime(ts)}}
	return e.newQuery(q, opts, qs, "/api/v1/query", form)
}

func (e corpusEngine) NewRangeQuery(_ context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	form := url.Values{"query": {qs}, "start": {formatTime(start)}, "end": {formatTime(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	return e.newQuery(q, opts, qs, "/api/v1/query_range", form)
}

func (e corpusEngine) newQuery(q storage.Queryable, opts promql.QueryOpts, qs, path string, form url.Values) (promql.Query, error) {
	s, ok := q.(*corpusStorage)
	if !ok {
		return nil, fmt.Errorf("storage %T is not Vigil's", q)
	}
	if opts != nil && opts.LookbackDelta() > 0 {
		form.Set("lookback_delta", strconv.FormatFloat(opts.LookbackDelta().Seconds(), 'f', -1, 64))
	}
	return &corpusQuery{client: e.client, url: workspaceURL(s.c.base, s.queryWorkspace()) + path, form: form, qs: qs}, nil
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

// corpusQuery is one query sent over HTTP when executed.
type corpusQuery struct {
	client *http.Client
	url    string
	form   url.Values
	qs     string
}

func (q *corpusQuery) Exec(ctx context.Context) *promql.Result {
	val, annos, err := q.do(ctx)
	return &promql.Result{Value: val, Warnings: annos, Err: err}
}

func (*corpusQuery) Close()                      {}
func (*corpusQuery) Statement() parser.Statement { return nil }
func (*corpusQuery) Stats() *stats.Statistics    { return nil }
func (*corpusQuery) Cancel()                     {}
func (q *corpusQuery) String() string            { return q.qs }

// apiResponse is the envelope of Prometheus's query API.
type apiResponse struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
	Infos     []string `json:"infos"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// annotation is an annotation of the API's answer: the text Prometheus
// formatted, of the kind (warning or info) it was listed as.
type annotation struct {
	msg  string
	kind error
}

func (a annotation) Error() string { return a.msg }
func (a annotation) Unwrap() error { return a.kind }

// queryParamPrefix is how the API wraps a parse error of the expression;
// Prometheus's engine returns the parse error itself.
const queryParamPrefix = `invalid parameter "query": `

func (q *corpusQuery) do(ctx context.Context) (parser.Value, annotations.Annotations, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, strings.NewReader(q.form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := q.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, nil, fmt.Errorf("HTTP %d, not a query API answer: %s", resp.StatusCode, body)
	}
	if r.Status != "success" {
		return nil, nil, errors.New(strings.TrimPrefix(r.Error, queryParamPrefix))
	}
	annos := annotations.Annotations{}
	for _, w := range r.Warnings {
		annos.Add(annotation{msg: w, kind: annotations.PromQLWarning})
	}
	for _, i := range r.Infos {
		annos.Add(annotation{msg: i, kind: annotations.PromQLInfo})
	}
	val, err := decodeValue(r.Data.ResultType, r.Data.Result)
	return val, annos, err
}
