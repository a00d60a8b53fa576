package storegateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

// block is one block of one workspace as this store-gateway holds it: its
// meta.json and index on local disk, opened while queries use it.
type block struct {
	workspace string
	id        ulid.ULID
	dir       string

	mu       sync.Mutex
	dropped  bool       // forgotten by drop: get makes a new entry
	local    bool       // meta.json and index are on disk
	open     *lazyBlock // nil while closed
	inUse    int
	lastUsed time.Time
}

// blocks holds the blocks of every workspace this store-gateway served or
// synced.
type blocks struct {
	dir    string
	bkt    objstore.Bucket
	logger log.Logger
	now    func() time.Time

	mu       sync.Mutex
	byKey    map[string]*block // workspace/block
	stopping bool              // no block opens any more
}

func key(workspace string, id ulid.ULID) string { return workspace + "/" + id.String() }

func (bs *blocks) get(workspace string, id ulid.ULID) *block {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	k := key(workspace, id)
	b := bs.byKey[k]
	if b == nil {
		b = &block{workspace: workspace, id: id, dir: filepath.Join(bs.dir, workspace, id.String())}
		bs.byKey[k] = b
	}
	return b
}

// download fetches the block's meta.json and its index header (see
// lazyIndex) to local disk, unless they are there. The caller holds b.mu.
func (bs *blocks) download(ctx context.Context, b *block) error {
	if b.local {
		return nil
	}
	if _, err := os.Stat(filepath.Join(b.dir, vtsdb.MetaFilename)); err == nil {
		b.local = true // synced before a restart
		return nil
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	bkt := bucket.ForWorkspace(bs.bkt, b.workspace)
	id := b.id.String()
	// The header first, meta.json last: a directory with meta.json holds a
	// complete header.
	lb, err := bs.openBlock(ctx, b, bkt)
	if err != nil {
		return err
	}
	if err := lb.Close(); err != nil {
		return err
	}
	if err := objstore.DownloadFile(ctx, bs.logger, bkt, path.Join(id, vtsdb.MetaFilename), filepath.Join(b.dir, vtsdb.MetaFilename)); err != nil {
		return fmt.Errorf("download %s of block %s: %w", vtsdb.MetaFilename, id, err)
	}
	b.local = true
	return nil
}

// openBlock opens the block over its local index pages, fetching what the
// index header needs. The caller holds b.mu.
func (bs *blocks) openBlock(ctx context.Context, b *block, bkt objstore.Bucket) (*lazyBlock, error) {
	id := b.id.String()
	meta, err := vtsdb.ReadLocalMeta(b.dir)
	if err != nil {
		if meta, err = vtsdb.ReadMeta(ctx, bkt, b.id); err != nil {
			return nil, fmt.Errorf("read meta of block %s: %w", id, err)
		}
	}
	attrs, err := bkt.Attributes(ctx, path.Join(id, vtsdb.IndexFilename))
	if err != nil {
		return nil, fmt.Errorf("index of block %s: %w", id, err)
	}
	li, err := openLazyIndex(bkt, path.Join(id, vtsdb.IndexFilename), b.dir, int(attrs.Size))
	if err != nil {
		return nil, err
	}
	lb, err := openLazyBlock(meta.BlockMeta, li)
	if err != nil {
		_ = li.Close()
		return nil, fmt.Errorf("open index of block %s: %w", id, err)
	}
	return lb, nil
}

// acquire returns the block opened, downloading its index first if needed;
// release must be called once the block is no longer read.
func (bs *blocks) acquire(ctx context.Context, workspace string, id ulid.ULID) (*lazyBlock, func(), error) {
	for {
		b := bs.get(workspace, id)
		opened, ok, err := bs.open(ctx, b)
		if !ok {
			continue // dropped between get and its lock: take the new entry
		}
		if err != nil {
			return nil, nil, err
		}
		return opened, func() {
			b.mu.Lock()
			b.inUse--
			b.lastUsed = bs.now()
			b.mu.Unlock()
		}, nil
	}
}

// open opens b and counts a reader in; ok is false when b was dropped.
func (bs *blocks) open(ctx context.Context, b *block) (_ *lazyBlock, ok bool, _ error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped {
		return nil, false, nil
	}
	bs.mu.Lock()
	stopping := bs.stopping
	bs.mu.Unlock()
	if stopping {
		return nil, true, errors.New("store-gateway is stopping")
	}
	if b.open == nil {
		if err := bs.download(ctx, b); err != nil {
			return nil, true, err
		}
		opened, err := bs.openBlock(ctx, b, bucket.ForWorkspace(bs.bkt, b.workspace))
		if err != nil {
			return nil, true, err
		}
		b.open = opened
	}
	b.inUse++
	b.lastUsed = bs.now()
	return b.open, true, nil
}

// closeIdle closes the indexes no query used since cutoff.
func (bs *blocks) closeIdle(cutoff time.Time) {
	for _, b := range bs.all() {
		b.mu.Lock()
		if b.open != nil && b.inUse == 0 && b.lastUsed.Before(cutoff) {
			if err := b.open.Close(); err != nil {
				level.Warn(bs.logger).Log("msg", "closing idle block failed", "workspace", b.workspace, "block", b.id, "err", err)
			}
			b.open = nil
		}
		b.mu.Unlock()
	}
}

// drop forgets a block and removes its local copy, unless a query uses it.
func (bs *blocks) drop(b *block) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inUse > 0 {
		return false
	}
	if b.open != nil {
		_ = b.open.Close()
		b.open = nil
	}
	if err := os.RemoveAll(b.dir); err != nil {
		level.Warn(bs.logger).Log("msg", "cannot remove local block", "dir", b.dir, "err", err)
	}
	b.local = false
	b.dropped = true
	bs.mu.Lock()
	if bs.byKey[key(b.workspace, b.id)] == b {
		delete(bs.byKey, key(b.workspace, b.id))
	}
	bs.mu.Unlock()
	return true
}

func (bs *blocks) all() []*block {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	out := make([]*block, 0, len(bs.byKey))
	for _, b := range bs.byKey {
		out = append(out, b)
	}
	return out
}

// onDisk returns the blocks with a local directory, also those synced
// before a restart.
func (bs *blocks) onDisk() []*block {
	var out []*block
	workspaces, _ := os.ReadDir(bs.dir)
	for _, ws := range workspaces {
		entries, _ := os.ReadDir(filepath.Join(bs.dir, ws.Name()))
		for _, e := range entries {
			if id, err := ulid.Parse(e.Name()); err == nil && e.IsDir() {
				out = append(out, bs.get(ws.Name(), id))
			}
		}
	}
	return out
}

// closeAll closes every open block at shutdown, once no query reads it (at
// most closeWait): an index is unmapped on close, and a reader of an
// unmapped index would crash the process. A block still read then is left
// open for the process's exit.
func (bs *blocks) closeAll() error {
	bs.mu.Lock()
	bs.stopping = true
	bs.mu.Unlock()
	deadline := time.Now().Add(closeWait)
	var errs []error
	for _, b := range bs.all() {
		for {
			b.mu.Lock()
			if b.open == nil || b.inUse == 0 {
				break
			}
			b.mu.Unlock()
			if time.Now().After(deadline) {
				b.mu.Lock()
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if b.open != nil && b.inUse == 0 {
			errs = append(errs, b.open.Close())
			b.open = nil
		}
		b.mu.Unlock()
	}
	return errors.Join(errs...)
}

// closeWait bounds how long shutdown waits for the queries reading blocks.
const closeWait = 30 * time.Second
