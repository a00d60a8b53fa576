package querier

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

// bucketIndexes caches the bucket index of each queried workspace, read
// again once older than the update period: queries never list the bucket,
// but for a workspace that has no index yet (its compactor has not run: a
// new workspace, or the compactor is down), whose blocks are found by a
// listing of at most maxListed blocks, cached the same way. No index and
// no listing is never taken for "no blocks": an answer without blocks that
// exist would look complete.
type bucketIndexes struct {
	bkt       objstore.Bucket
	update    time.Duration
	maxStale  time.Duration
	maxListed int
	now       func() time.Time
	idleAfter time.Duration

	mu      sync.Mutex
	entries map[string]*indexEntry
}

type indexEntry struct {
	mu       sync.Mutex
	idx      *vtsdb.Index
	listed   bool // idx is a listing of the bucket, not the compactor's index
	loadedAt time.Time
	usedAt   atomic.Int64 // unix nanoseconds
}

func newBucketIndexes(bkt objstore.Bucket, update, maxStale time.Duration, maxListed int) *bucketIndexes {
	return &bucketIndexes{bkt: bkt, update: update, maxStale: maxStale, maxListed: maxListed, now: time.Now, idleAfter: time.Hour, entries: map[string]*indexEntry{}}
}

// get returns the workspace's bucket index or, when it has none, the
// listing of its blocks. The index's UpdatedAt is when it (or the listing)
// described the bucket.
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
	wsBkt := bucket.ForWorkspace(b.bkt, workspace)
	idx, err := vtsdb.ReadIndex(ctx, wsBkt)
	listed := false
	if errors.Is(err, vtsdb.ErrIndexNotFound) {
		var old *vtsdb.Index
		if e.listed {
			old = e.idx // its blocks' meta.json need no second read
		}
		idx, err = vtsdb.ListBlocks(ctx, wsBkt, old, now, b.maxListed)
		listed = true
		if errors.Is(err, vtsdb.ErrTooManyBlocks) {
			return nil, apierror.New(apierror.Unavailable, apierror.IDStoreConsistency,
				"workspace %s has no bucket index yet and more blocks in object storage than a query lists (%v, -querier.max-blocks-without-bucket-index): is the compactor running?",
				workspace, err)
		}
	}
	switch {
	case err == nil:
		e.idx, e.listed, e.loadedAt = idx, listed, now
	case !e.loadedAt.IsZero() && now.Sub(e.loadedAt) < b.maxStale:
		// Object storage hiccup: the index read a little while ago serves.
	default:
		return nil, apierror.New(apierror.Unavailable, apierror.IDStorageUnavailable,
			"cannot read the bucket index or list the blocks of workspace %s: %v", workspace, err)
	}
	// Ingesters drop blocks a while after uploading them, whether or not an
	// index lists them: an index the compactor stopped updating would hide
	// them.
	if !e.listed && now.Sub(time.Unix(e.idx.UpdatedAt, 0)) > b.maxStale {
		return nil, apierror.New(apierror.Unavailable, apierror.IDStoreConsistency,
			"the bucket index of workspace %s was last updated %s ago, more than -querier.bucket-index-max-stale-period (%s): is the compactor running?",
			workspace, now.Sub(time.Unix(e.idx.UpdatedAt, 0)).Truncate(time.Second), b.maxStale)
	}
	return e.idx, nil
}
