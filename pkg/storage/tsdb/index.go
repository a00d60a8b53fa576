package tsdb

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// IndexName is the object holding a workspace's bucket index.
const IndexName = "bucket-index.json.gz"

// indexVersion is the format of the bucket index.
const indexVersion = 1

// Index is a workspace's bucket index: its complete blocks and their deletion
// marks. The compactor writes it; queriers and store-gateways read it, so
// that no query lists the bucket.
type Index struct {
	Version       int            `json:"version"`
	Blocks        []Block        `json:"blocks"`
	DeletionMarks []DeletionMark `json:"block_deletion_marks"`
	// UpdatedAt is when the index was written, in Unix seconds.
	UpdatedAt int64 `json:"updated_at"`
}

// Block is one complete block of the index.
type Block struct {
	ID      ulid.ULID `json:"block_id"`
	MinTime int64     `json:"min_time"` // inclusive, milliseconds
	MaxTime int64     `json:"max_time"` // exclusive, milliseconds
	// UploadedAt is when the index first listed the block, in Unix seconds.
	UploadedAt int64  `json:"uploaded_at"`
	Level      int    `json:"compaction_level"`
	Source     string `json:"source"`
	Ingester   string `json:"ingester,omitempty"`
	Zone       string `json:"zone,omitempty"`
	Series     uint64 `json:"series"`
	Samples    uint64 `json:"samples"`
}

// Overlaps reports whether the block holds samples in the inclusive range
// [mint, maxt].
func (b Block) Overlaps(mint, maxt int64) bool { return b.MinTime <= maxt && mint < b.MaxTime }

// ErrIndexNotFound is returned by ReadIndex for a workspace without one.
var ErrIndexNotFound = errors.New("bucket index not found")

// ReadIndex reads the workspace's bucket index.
func ReadIndex(ctx context.Context, bkt objstore.BucketReader) (*Index, error) {
	r, err := bkt.Get(ctx, IndexName)
	if bkt.IsObjNotFoundErr(err) {
		return nil, ErrIndexNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read bucket index: %w", err)
	}
	defer r.Close()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read bucket index: %w", err)
	}
	defer gz.Close()
	var idx Index
	if err := json.NewDecoder(gz).Decode(&idx); err != nil {
		return nil, fmt.Errorf("decode bucket index: %w", err)
	}
	if idx.Version != indexVersion {
		return nil, fmt.Errorf("unsupported bucket index version %d", idx.Version)
	}
	return &idx, nil
}

// WriteIndex writes the workspace's bucket index.
func WriteIndex(ctx context.Context, bkt objstore.Bucket, idx *Index) error {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if err := json.NewEncoder(gz).Encode(idx); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := bkt.Upload(ctx, IndexName, &buf); err != nil {
		return fmt.Errorf("write bucket index: %w", err)
	}
	return nil
}

// DeletionMark returns the block's deletion mark, if it has one.
func (idx *Index) DeletionMark(id ulid.ULID) (DeletionMark, bool) {
	for _, m := range idx.DeletionMarks {
		if m.ID == id {
			return m, true
		}
	}
	return DeletionMark{}, false
}

// Scan is what listing a workspace's bucket found.
type Scan struct {
	Index *Index
	// Partial holds the blocks without meta.json, and when their newest
	// object was written: uploads in progress, or cut short.
	Partial map[ulid.ULID]time.Time
}

// ScanBucket lists the workspace's blocks and deletion marks and returns the
// index they make. Blocks of old are taken from it without reading their
// meta.json again (a block never changes once complete).
func ScanBucket(ctx context.Context, bkt objstore.Bucket, old *Index, now time.Time) (*Scan, error) {
	return scanBucket(ctx, bkt, old, now, 0, true)
}

// ErrTooManyBlocks is returned by ListBlocks for a workspace with more
// blocks than it may list.
var ErrTooManyBlocks = errors.New("too many blocks to list")

// ListBlocks is ScanBucket for readers of a workspace that has no bucket
// index yet (its compactor has not run): the complete blocks and their
// deletion marks, with no look at partial uploads, and at most maxBlocks
// blocks listed (more: ErrTooManyBlocks, before any meta.json is read).
func ListBlocks(ctx context.Context, bkt objstore.Bucket, old *Index, now time.Time, maxBlocks int) (*Index, error) {
	scan, err := scanBucket(ctx, bkt, old, now, maxBlocks, false)
	if err != nil {
		return nil, err
	}
	return scan.Index, nil
}

// scanBucket lists at most maxBlocks blocks (0: any number); partials says
// whether to find when each partial upload was last written.
func scanBucket(ctx context.Context, bkt objstore.Bucket, old *Index, now time.Time, maxBlocks int, partials bool) (*Scan, error) {
	known := map[ulid.ULID]Block{}
	if old != nil {
		for _, b := range old.Blocks {
			known[b.ID] = b
		}
	}
	// Marks first: a mark written after this listing (its replacement
	// block may be missing from the listing) is left for the next scan,
	// never applied without the block that replaces the marked one.
	marks, err := readDeletionMarks(ctx, bkt)
	if err != nil {
		return nil, fmt.Errorf("list deletion marks: %w", err)
	}
	var ids []ulid.ULID
	err = bkt.Iter(ctx, "", func(name string) error {
		if id, err := ulid.Parse(strings.TrimSuffix(name, "/")); err == nil && strings.HasSuffix(name, "/") {
			ids = append(ids, id)
			if maxBlocks > 0 && len(ids) > maxBlocks {
				return ErrTooManyBlocks
			}
		}
		return nil
	})
	if errors.Is(err, ErrTooManyBlocks) {
		return nil, fmt.Errorf("%w: more than %d", ErrTooManyBlocks, maxBlocks)
	}
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	scan := &Scan{Index: &Index{Version: indexVersion, UpdatedAt: now.Unix()}, Partial: map[ulid.ULID]time.Time{}}
	for _, id := range ids {
		if b, ok := known[id]; ok {
			scan.Index.Blocks = append(scan.Index.Blocks, b)
			continue
		}
		meta, err := ReadMeta(ctx, bkt, id)
		if errors.Is(err, ErrNoMeta) {
			var last time.Time
			if partials {
				if last, err = newestObject(ctx, bkt, id); err != nil {
					return nil, err
				}
			}
			scan.Partial[id] = last
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read meta of block %s: %w", id, err)
		}
		scan.Index.Blocks = append(scan.Index.Blocks, Block{
			ID: id, MinTime: meta.MinTime, MaxTime: meta.MaxTime, UploadedAt: now.Unix(),
			Level: meta.Compaction.Level, Source: meta.Vigil.Source, Ingester: meta.Vigil.Ingester, Zone: meta.Vigil.Zone,
			Series: meta.Stats.NumSeries, Samples: meta.Stats.NumSamples,
		})
	}
	slices.SortFunc(scan.Index.Blocks, func(a, b Block) int { return a.ID.Compare(b.ID) })
	for _, b := range scan.Index.Blocks {
		if m, ok := marks[b.ID]; ok {
			scan.Index.DeletionMarks = append(scan.Index.DeletionMarks, m)
		}
	}
	return scan, nil
}

// newestObject returns when the newest object of a block was written.
func newestObject(ctx context.Context, bkt objstore.Bucket, id ulid.ULID) (time.Time, error) {
	var last time.Time
	err := bkt.Iter(ctx, id.String()+"/", func(name string) error {
		if strings.HasSuffix(name, "/") {
			return nil
		}
		attrs, err := bkt.Attributes(ctx, name)
		if bkt.IsObjNotFoundErr(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if attrs.LastModified.After(last) {
			last = attrs.LastModified
		}
		return nil
	}, objstore.WithRecursiveIter())
	return last, err
}
