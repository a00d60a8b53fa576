package frontend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"

	"github.com/grafana/dskit/httpgrpc"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-metrics/vigil/pkg/pb/frontendpb"
)

// legResult is the answer of one leg.
type legResult struct {
	resp   *httpgrpc.HTTPResponse
	key    string // results cache key; "" when the leg is not cacheable
	cached bool
}

// serveRange answers a range query from its legs: cached ones from the
// results cache, the others from queriers, at most
// -query-frontend.max-parallelism-per-query at once; merged into one
// answer, or the first leg's error.
func (f *Frontend) serveRange(ctx context.Context, w http.ResponseWriter, ws string, q rangeQuery) {
	legs := splitByInterval(q.start, q.end, q.step, f.cfg.SplitInterval.Milliseconds())
	f.metrics.legs.Add(float64(len(legs)))
	results := make([]legResult, len(legs))
	// A blocked query is not answered from the cache: the querier refuses
	// it. Samples may still arrive within the freshness, or the
	// workspace's out-of-order window, of now: legs there are not cached.
	cacheable := f.cache != nil && q.form.Get("stats") == "" && !q.fixedTime && !f.limits.QueryBlocked(ws, q.form.Get("query"))
	freshFrom := f.now().Add(-max(f.cfg.MaxCacheFreshness, f.limits.OutOfOrderTimeWindow(ws))).UnixMilli()
	var keys []string
	for i, l := range legs {
		if cacheable && l.end < freshFrom {
			results[i].key = cacheKey(ws, q.form, l)
			keys = append(keys, results[i].key)
		}
	}
	if len(keys) > 0 {
		found := f.cache.GetMulti(ctx, keys)
		for i := range results {
			if results[i].key == "" {
				continue
			}
			if body, ok := found[results[i].key]; ok {
				results[i].resp, results[i].cached = &httpgrpc.HTTPResponse{Code: http.StatusOK, Body: body}, true
				f.metrics.cacheHits.Inc()
			} else {
				f.metrics.cacheMisses.Inc()
			}
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.cfg.MaxParallelismPerQuery)
	for i, l := range legs {
		if results[i].resp != nil {
			continue
		}
		req := legRequest(ws, q.userAgent, q.form, l)
		g.Go(func() error {
			resp, err := f.do(gctx, ws, req)
			if err != nil {
				return err
			}
			results[i].resp = resp
			if resp.Code != http.StatusOK {
				// A failed leg fails the query: the others are not needed.
				return errLegFailed
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		for _, r := range results {
			if r.resp != nil && r.resp.Code != http.StatusOK {
				writeResponse(w, r.resp, nil)
				return
			}
		}
		writeResponse(w, nil, err)
		return
	}

	if len(results) == 1 && results[0].key == "" {
		// One leg, not cached: its answer is the query's, as it came.
		writeResponse(w, results[0].resp, nil)
		return
	}
	answers := make([]*answer, len(results))
	toCache := map[string][]byte{}
	for i, r := range results {
		a, err := parseAnswer(r.resp.Body)
		if err != nil {
			writeResponse(w, nil, err)
			return
		}
		answers[i] = a
		if r.key != "" && !r.cached && len(a.Warnings) == 0 {
			toCache[r.key] = r.resp.Body
		}
	}
	if len(toCache) > 0 {
		f.cache.SetMultiAsync(toCache, f.cfg.ResultsCache.TTL)
	}
	out, err := mergeAnswers(answers)
	if err != nil {
		writeResponse(w, nil, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

type legError struct{}

func (legError) Error() string { return "a leg of the query failed" }

var errLegFailed error = legError{}

// legRequest is the query_range request of one leg: the query's own
// parameters with the leg's start and end.
func legRequest(ws, userAgent string, form url.Values, l leg) *httpgrpc.HTTPRequest {
	params := url.Values{}
	for k, v := range form {
		params[k] = v
	}
	params.Set("start", formatTime(l.start))
	params.Set("end", formatTime(l.end))
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set(frontendpb.WorkspaceHeader, ws)
	if userAgent != "" {
		h.Set("User-Agent", userAgent)
	}
	return &httpgrpc.HTTPRequest{Method: http.MethodPost, Url: rangePath, Headers: httpgrpc.FromHeader(h), Body: []byte(params.Encode())}
}

// cacheKey names one leg's answer in the results cache: the workspace, the
// query's parameters other than its bounds, and the leg's bounds.
func cacheKey(ws string, form url.Values, l leg) string {
	params := url.Values{}
	for k, v := range form {
		if k != "start" && k != "end" {
			params[k] = v
		}
	}
	h := sha256.New()
	h.Write([]byte(ws))
	h.Write([]byte{0})
	h.Write([]byte(params.Encode()))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, l.start, 10))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, l.end, 10))
	return "qfr:" + hex.EncodeToString(h.Sum(nil))
}
