package querier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

// bucketIndexes caches the bucket index of each queried workspace, read
// again once older than the update period: queries never list the bucket.
type bucketIndexes struct {
	bkt       objstore.Bucket
	update    time.Duration
	maxStale  time.Duration
	now       func() time.Time
	idleAfter time.Duration

	mu      sync.Mutex
	entries map[string]*indexEntry
}

type indexEntry struct {
	mu       sync.Mutex
	idx      *vtsdb.Index // nil: the workspace has no index yet
	loadedAt time.Time
	usedAt   atomic.Int64 // unix nanoseconds
}

func newBucketIndexes(bkt objstore.Bucket, update, maxStale time.Duration) *bucketIndexes {
	return &bucketIndexes{bkt: bkt, update: update, maxStale: maxStale, now: time.Now, idleAfter: time.Hour, entries: map[string]*indexEntry{}}
}

// get returns the workspace's bucket index; an empty one when it has none
// (no block was compacted or indexed yet: the ingesters still hold the data).
func (b *bucketIndexes) get(ctx context.Context, workspace string) (*vtsdb.Index, error) {
	now := b.now()
	b.mu.Lock()
	e := b.entries[workspace]
	if e == nil {
		e = &indexEntry{}
		b.entries[workspace] = e
	}
	for id, other := range b.entries {
		if other != e && now.UnixNano()-other.usedAt.Load() > int64(b.idleAfter) && other.mu.TryLock() {
			delete(b.entries, id)
			other.mu.Unlock()
		}
	}
	b.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	e.usedAt.Store(now.UnixNano())
	if !e.loadedAt.IsZero() && now.Sub(e.loadedAt) < b.update {
		return e.idx, nil
	}
	idx, err := vtsdb.ReadIndex(ctx, bucket.ForWorkspace(b.bkt, workspace))
	switch {
	case err == nil:
		e.idx, e.loadedAt = idx, now
	case errors.Is(err, vtsdb.ErrIndexNotFound):
		e.idx, e.loadedAt = nil, now
	case !e.loadedAt.IsZero() && now.Sub(e.loadedAt) < b.maxStale:
		// Object storage hiccup: the index read a little while ago serves.
	default:
		return nil, fmt.Errorf("read bucket index of workspace %s: %w", workspace, err)
	}
	// Ingesters drop blocks a while after uploading them, whether or not an
	// index lists them: an index the compactor stopped updating would hide
	// them.
	if e.idx != nil && now.Sub(time.Unix(e.idx.UpdatedAt, 0)) > b.maxStale {
		return nil, apierror.New(apierror.Unavailable, apierror.IDStoreConsistency,
			"the bucket index of workspace %s was last updated %s ago, more than -querier.bucket-index-max-stale-period (%s): is the compactor running?",
			workspace, now.Sub(time.Unix(e.idx.UpdatedAt, 0)).Truncate(time.Second), b.maxStale)
	}
	return e.idx, nil
}
