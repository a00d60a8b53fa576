package compactor

import (
	"context"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/internal/bench"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

// BenchmarkCompactedBytesPerSample compacts the three zones' copies of 2 h
// of node-exporter-like data (20 hosts, 11,440 series, 480 scrapes each)
// into one block and reports the bytes per sample it takes in object
// storage (chunks, index and meta.json), next to the bytes per sample of one
// ingester's copy.
func BenchmarkCompactedBytesPerSample(b *testing.B) {
	data := bench.NodeExporterData(20, 480, time.Unix(1_700_000_000, 0), 1)
	var series []storage.Series
	samples := 0
	for _, ts := range data {
		lb := labels.NewScratchBuilder(len(ts.Labels))
		for _, l := range ts.Labels {
			lb.Add(l.Name, l.Value)
		}
		var cs []chunks.Sample
		for _, s := range ts.Samples {
			cs = append(cs, fsample{s.Timestamp, s.Value})
		}
		series = append(series, storage.NewListSeries(lb.Labels(), cs))
		samples += len(ts.Samples)
	}
	var replica, compacted float64
	for i := 0; i < b.N; i++ {
		bkt := objstore.NewInMemBucket()
		for _, zone := range []string{"a", "b", "c"} {
			dir, err := tsdb.CreateBlock(series, b.TempDir(), 4*hour, promslog.NewNopLogger())
			require.NoError(b, err)
			meta, err := vtsdb.ReadLocalMeta(dir)
			require.NoError(b, err)
			meta.Vigil = vtsdb.Origin{Workspace: "ws-1", Source: vtsdb.SourceIngester, Zone: zone}
			require.NoError(b, vtsdb.Upload(context.Background(), log.NewNopLogger(), bucket.ForWorkspace(bkt, "ws-1"), dir, meta))
		}
		blocks := liveBlocksB(b, bkt)
		replica = float64(blockBytes(b, bkt, blocks[0].ID.String())) / float64(samples)
		c := testCompactor(b, bkt, fixedRetention{}, nil)
		require.NoError(b, c.RunCompaction(context.Background()))
		blocks = liveBlocksB(b, bkt)
		require.Len(b, blocks, 1)
		require.Equal(b, uint64(samples), blocks[0].Samples)
		compacted = float64(blockBytes(b, bkt, blocks[0].ID.String())) / float64(samples)
	}
	b.ReportMetric(compacted, "B/sample")
	b.ReportMetric(replica, "replica-B/sample")
}

func liveBlocksB(b *testing.B, bkt objstore.Bucket) []vtsdb.Block {
	idx, err := vtsdb.ScanBucket(context.Background(), bucket.ForWorkspace(bkt, "ws-1"), nil, time.Now())
	require.NoError(b, err)
	var out []vtsdb.Block
	for _, blk := range idx.Index.Blocks {
		if _, marked := idx.Index.DeletionMark(blk.ID); !marked {
			out = append(out, blk)
		}
	}
	return out
}

// blockBytes is the size of every object of a block.
func blockBytes(b *testing.B, bkt objstore.Bucket, id string) int64 {
	var total int64
	ws := bucket.ForWorkspace(bkt, "ws-1")
	require.NoError(b, ws.Iter(context.Background(), id+"/", func(name string) error {
		attrs, err := ws.Attributes(context.Background(), name)
		if err != nil {
			return err
		}
		total += attrs.Size
		return nil
	}, objstore.WithRecursiveIter()))
	return total
}
