package ingester

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// recordingStream is the server side of a QueryStream call that keeps what
// is sent.
type recordingStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*ingesterpb.QueryStreamResponse
}

func (s *recordingStream) Context() context.Context { return s.ctx }
func (s *recordingStream) Send(m *ingesterpb.QueryStreamResponse) error {
	// Keep a copy: the server reuses its batch for the next message.
	raw, err := m.Marshal()
	if err != nil {
		return err
	}
	var c ingesterpb.QueryStreamResponse
	if err := c.Unmarshal(raw); err != nil {
		return err
	}
	s.msgs = append(s.msgs, &c)
	return nil
}

func incoming(ws string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(user.OrgIDHeaderName, ws))
}

// TestQueryStreamSendsChunksInBatches: series go out sorted, in messages of
// at most the batch size, with the TSDB's chunks that decode to the samples
// written; a labels-only request carries no chunk.
func TestQueryStreamSendsChunksInBatches(t *testing.T) {
	cfg := testConfig()
	cfg.QueryStreamBatch = 2
	ing := startIngester(t, cfg, t.TempDir(), newKV(t))
	now := time.Now().UnixMilli()
	for i := 0; i < 5; i++ {
		var samples []prompb.Sample
		for j := 0; j < 300; j++ { // more than one chunk per series
			samples = append(samples, prompb.Sample{Timestamp: now - int64(300-j)*1000, Value: float64(j)})
		}
		require.NoError(t, push(t, ing, "ws-a", ts("up", fmt.Sprint(i), samples...)))
	}
	srv := NewGRPCServer(ing)
	req := &ingesterpb.QueryRequest{
		StartTimestampMs: now - 3600_000, EndTimestampMs: now,
		Matchers: []prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}},
	}
	stream := &recordingStream{ctx: incoming("ws-a")}
	require.NoError(t, srv.QueryStream(req, stream))
	require.Len(t, stream.msgs, 3)
	job := 0
	for _, m := range stream.msgs {
		require.LessOrEqual(t, len(m.Series), 2)
		for _, s := range m.Series {
			require.Equal(t, fmt.Sprint(job), s.Labels[1].Value)
			job++
			require.Greater(t, len(s.Chunks), 1)
			n := 0
			for _, c := range s.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				require.NoError(t, err)
				it := chk.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					tt, v := it.At()
					require.Equal(t, now-int64(300-n)*1000, tt)
					require.Equal(t, float64(n), v)
					n++
				}
			}
			require.Equal(t, 300, n)
		}
	}

	req.SkipChunks = true
	stream = &recordingStream{ctx: incoming("ws-a")}
	require.NoError(t, srv.QueryStream(req, stream))
	series := 0
	for _, m := range stream.msgs {
		for _, s := range m.Series {
			require.Empty(t, s.Chunks)
			series++
		}
	}
	require.Equal(t, 5, series)
}

// TestClosedQuerierRefusesSelects: a querier holds its TSDB until closed;
// after, a select must not open a TSDB querier nobody would close.
func TestClosedQuerierRefusesSelects(t *testing.T) {
	ing := startIngester(t, testConfig(), t.TempDir(), newKV(t))
	require.NoError(t, push(t, ing, "ws-a", ts("up", "a", prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1})))
	q, err := ing.Querier(tenant.WithID(context.Background(), "ws-a"), 0, 1<<62)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	ss := q.Select(context.Background(), true, nil)
	require.False(t, ss.Next())
	require.ErrorIs(t, ss.Err(), errQuerierClosed)
	_, _, err = q.LabelNames(context.Background(), nil)
	require.ErrorIs(t, err, errQuerierClosed)
	require.NoError(t, q.Close(), "closing twice is harmless")
}
