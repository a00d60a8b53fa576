package ingester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/fileutil"

	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// shippedFile lists, in a workspace's TSDB directory, the blocks already
// uploaded. A block is recorded only after its upload completed; a crash in
// between uploads it again, which rewrites the same objects.
const shippedFile = "shipped.json"

type shippedState struct {
	Version  int         `json:"version"`
	Uploaded []ulid.ULID `json:"uploaded"`
}

// shipper uploads one workspace's blocks. Its lock serialises the uploads of
// that workspace (the periodic ship, a flush, an idle close).
type shipper struct {
	mu       sync.Mutex
	dir      string
	uploaded map[ulid.ULID]struct{}
	loaded   bool
}

func (s *shipper) load() error {
	if s.loaded {
		return nil
	}
	s.uploaded = map[ulid.ULID]struct{}{}
	b, err := os.ReadFile(filepath.Join(s.dir, shippedFile))
	if errors.Is(err, os.ErrNotExist) {
		s.loaded = true
		return nil
	}
	if err != nil {
		return err
	}
	var st shippedState
	if err := json.Unmarshal(b, &st); err != nil {
		// Uploading every block again is safe; losing one is not.
		s.loaded = true
		return nil
	}
	for _, id := range st.Uploaded {
		s.uploaded[id] = struct{}{}
	}
	s.loaded = true
	return nil
}

// isUploaded reports whether a block was uploaded. Used by the TSDB's
// retention (under the TSDB's own locks): it must not wait for an upload.
func (s *shipper) isUploaded(id ulid.ULID) bool {
	if !s.mu.TryLock() {
		return false // uploading: keep every block for now
	}
	defer s.mu.Unlock()
	if s.load() != nil {
		return false
	}
	_, ok := s.uploaded[id]
	return ok
}

func (s *shipper) persist(present map[ulid.ULID]struct{}) error {
	st := shippedState{Version: 1}
	for id := range s.uploaded {
		if _, ok := present[id]; ok {
			st.Uploaded = append(st.Uploaded, id)
		} else {
			delete(s.uploaded, id) // deleted locally since
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, shippedFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return fileutil.Replace(tmp, filepath.Join(s.dir, shippedFile))
}

// ship uploads every block of the workspace's TSDB not uploaded yet, oldest
// first, and reports how many it uploaded. It stops at the first failure:
// the next ship resumes there.
func (i *Ingester) ship(ctx context.Context, id string, u *userDB) (int, error) {
	u.shipper.mu.Lock()
	defer u.shipper.mu.Unlock()
	if err := u.shipper.load(); err != nil {
		return 0, err
	}
	bkt := bucket.ForWorkspace(i.bucket, id)
	present := map[ulid.ULID]struct{}{}
	n := 0
	var shipErr error
	checkedDeleted := false
	for _, b := range u.db.Blocks() {
		meta := b.Meta()
		present[meta.ULID] = struct{}{}
		if _, ok := u.shipper.uploaded[meta.ULID]; ok || shipErr != nil {
			continue
		}
		if !checkedDeleted {
			// A deleted workspace's data never goes (back) up.
			mark, err := vtsdb.ReadWorkspaceDeletionMark(ctx, bkt)
			if err != nil {
				return n, err
			}
			if mark != nil {
				return n, errWorkspaceDeleted(id)
			}
			checkedDeleted = true
		}
		// A block compacted away meanwhile (an upload resumed after the
		// compactor merged the first copy) is not uploaded again.
		if marked, err := bkt.Exists(ctx, vtsdb.DeletionMarkName(meta.ULID)); err != nil {
			i.metrics.shipFailures.Inc()
			shipErr = err
			continue
		} else if marked {
			u.shipper.uploaded[meta.ULID] = struct{}{}
			n++
			continue
		}
		start := time.Now()
		m := &vtsdb.Meta{BlockMeta: meta, Vigil: vtsdb.Origin{
			Workspace: id, Source: vtsdb.SourceIngester,
			Ingester: i.lifecycler.GetInstanceID(), Zone: i.lifecycler.GetInstanceZone(),
		}}
		if err := vtsdb.Upload(ctx, i.logger, bkt, b.Dir(), m); err != nil {
			i.metrics.shipFailures.Inc()
			shipErr = err
			continue
		}
		u.shipper.uploaded[meta.ULID] = struct{}{}
		n++
		i.metrics.shippedBlocks.Inc()
		level.Info(i.logger).Log("msg", "uploaded block", "workspace", id, "block", meta.ULID, "mint", meta.MinTime, "maxt", meta.MaxTime, "duration", time.Since(start))
	}
	if n > 0 {
		if err := u.shipper.persist(present); err != nil {
			return n, errors.Join(shipErr, fmt.Errorf("record uploaded blocks: %w", err))
		}
	}
	return n, shipErr
}

// blocksToDelete is the TSDB's retention: a local block goes once it is
// uploaded and older than -ingester.tsdb.retention-period by the clock, so
// that no block leaves the ingester before object storage has it.
func (i *Ingester) blocksToDelete(s *shipper) tsdb.BlocksToDeleteFunc {
	return func(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
		out := map[ulid.ULID]struct{}{}
		cutoff := i.now().Add(-i.cfg.Retention).UnixMilli()
		for _, b := range blocks {
			if m := b.Meta(); m.MaxTime < cutoff && s.isUploaded(m.ULID) {
				out[m.ULID] = struct{}{}
			}
		}
		return out
	}
}

// shipAll uploads the new blocks of every open TSDB. Shipping does not
// count as using a workspace: an idle one still closes.
func (i *Ingester) shipAll(ctx context.Context) {
	for id, u := range i.openDBs() {
		if !u.tryHoldIdle() {
			continue
		}
		if _, err := i.ship(ctx, id, u); err != nil {
			level.Warn(i.logger).Log("msg", "block upload failed; retrying at the next ship", "workspace", id, "err", err)
		}
		u.release()
	}
}

// flushDB cuts the whole head of a workspace's TSDB into a block and uploads
// it with every block not uploaded yet. Samples older than the head's new
// start are refused afterwards, as after any head compaction.
func (i *Ingester) flushDB(ctx context.Context, id string, u *userDB) error {
	u.appendMu.Lock()
	err := compactHead(u.db)
	u.appendMu.Unlock()
	if err != nil {
		return fmt.Errorf("cut head of workspace %s: %w", id, err)
	}
	_, err = i.ship(ctx, id, u)
	return err
}

// compactHead cuts the whole head into a block, if it holds samples, and
// its out-of-order samples (of a workspace with an out-of-order window) into
// blocks of their own, which object storage merges with the others.
func compactHead(db *tsdb.DB) error {
	h := db.Head()
	mint, maxt := h.MinTime(), h.MaxTime()
	if h.NumSeries() == 0 || mint == math.MaxInt64 || maxt == math.MinInt64 {
		return nil
	}
	if err := db.CompactHead(tsdb.NewRangeHead(h, mint, maxt)); err != nil {
		return err
	}
	return db.CompactOOOHead(context.Background())
}

// Flush cuts the head of every workspace (or only of workspace, when set)
// into a block and uploads every block not uploaded yet: before scaling an
// ingester down, and in tests.
func (i *Ingester) Flush(ctx context.Context, workspace string) error {
	ids, err := i.localWorkspaces()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if workspace != "" && id != workspace {
			continue
		}
		u, err := i.acquire(ctx, id, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if u == nil {
			continue
		}
		errs = append(errs, i.flushDB(ctx, id, u))
		u.release()
	}
	return errors.Join(errs...)
}

// localWorkspaces lists the workspaces with a TSDB directory here.
func (i *Ingester) localWorkspaces() ([]string, error) {
	entries, err := os.ReadDir(i.dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && tenant.ValidID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// FlushHandler serves POST /ingester/flush[?workspace=ID] on the admin
// listener: it answers once the heads are cut and every block is uploaded,
// 204 when all went well and 500 with the failures otherwise.
func (i *Ingester) FlushHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	ws := r.URL.Query().Get("workspace")
	if ws != "" && tenant.ValidID(ws) != nil {
		http.Error(w, "invalid workspace ID", http.StatusBadRequest)
		return
	}
	if err := i.Flush(r.Context(), ws); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
