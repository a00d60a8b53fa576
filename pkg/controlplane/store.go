package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

const workspacesPrefix = "control/workspaces/"

// Config configures the control plane.
type Config struct {
	Region                  string        `yaml:"region"`
	MaxWorkspacesPerAccount int           `yaml:"max_workspaces_per_account"`
	StatusCacheTTL          time.Duration `yaml:"status_cache_ttl"`
	PublicURL               string        `yaml:"public_url"`
}

// RegisterFlags registers the control-plane flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Region, "controlplane.region", "us-east-1", "Region named in the ARNs of resources.")
	f.IntVar(&c.MaxWorkspacesPerAccount, "controlplane.max-workspaces-per-account", 25, "Maximum workspaces one account may own. AMP quota: 25 workspaces per account per region.")
	f.DurationVar(&c.StatusCacheTTL, "controlplane.status-cache-ttl", 10*time.Second, "How long the data plane trusts a cached workspace status before reading it again from object storage. A deleted workspace may accept requests for up to this long on other replicas.")
	f.StringVar(&c.PublicURL, "controlplane.public-url", "", "Base URL shown in prometheusEndpoint. Empty: derived from the request's Host header.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Region == "" {
		return fmt.Errorf("controlplane.region must not be empty")
	}
	if c.MaxWorkspacesPerAccount <= 0 {
		return fmt.Errorf("controlplane.max-workspaces-per-account must be positive")
	}
	return nil
}

// negativeCacheTTL bounds how long a missing workspace is remembered, so that
// a workspace created through another replica becomes usable quickly while
// requests for unknown IDs do not each cost an object-storage read.
const negativeCacheTTL = time.Second

type cacheEntry struct {
	ws      *Workspace // nil: does not exist
	fetched time.Time
}

// Store reads and writes workspace documents and answers the data plane's
// "is this workspace active?" from a short-lived cache.
type Store struct {
	cfg Config
	bkt objstore.Bucket
	now func() time.Time

	mu      sync.RWMutex
	cache   map[string]cacheEntry
	missing int // entries of cache with a nil workspace
}

// NewStore returns a Store over bkt.
func NewStore(cfg Config, bkt objstore.Bucket) *Store {
	return &Store{cfg: cfg, bkt: bkt, now: time.Now, cache: map[string]cacheEntry{}}
}

func objectName(id string) string { return workspacesPrefix + id + ".json" }

func notFound(id string) error {
	return apierror.New(apierror.NotFound, apierror.IDWorkspaceNotFound, "Workspace not found: %s", id)
}

// Get reads a workspace document. A missing workspace is a NotFound error.
func (s *Store) Get(ctx context.Context, id string) (*Workspace, error) {
	if tenant.ValidID(id) != nil {
		return nil, notFound(id)
	}
	r, err := s.bkt.Get(ctx, objectName(id))
	if err != nil {
		if s.bkt.IsObjNotFoundErr(err) {
			s.remember(id, nil)
			return nil, notFound(id)
		}
		return nil, fmt.Errorf("read workspace %s: %w", id, err)
	}
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read workspace %s: %w", id, err)
	}
	var ws Workspace
	if err := json.Unmarshal(body, &ws); err != nil {
		return nil, fmt.Errorf("decode workspace %s: %w", id, err)
	}
	s.remember(id, &ws)
	return &ws, nil
}

func (s *Store) put(ctx context.Context, ws *Workspace) error {
	body, err := json.Marshal(ws)
	if err != nil {
		return err
	}
	if err := s.bkt.Upload(ctx, objectName(ws.ID), bytes.NewReader(body)); err != nil {
		return fmt.Errorf("write workspace %s: %w", ws.ID, err)
	}
	s.remember(ws.ID, ws)
	return nil
}

// maxMissing bounds the remembered unknown IDs, which any caller can invent.
const maxMissing = 10_000

func (s *Store) remember(id string, ws *Workspace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ws == nil {
		if s.missing >= maxMissing {
			for k, e := range s.cache {
				if e.ws == nil {
					delete(s.cache, k)
				}
			}
			s.missing = 0
		}
		if old, ok := s.cache[id]; !ok || old.ws != nil {
			s.missing++
		}
	} else if old, ok := s.cache[id]; ok && old.ws == nil {
		s.missing--
	}
	s.cache[id] = cacheEntry{ws: ws, fetched: s.now()}
}

// CheckActive returns nil when the workspace exists and is ACTIVE, and a
// NotFound error otherwise. It is on the hot path of every write and query.
func (s *Store) CheckActive(ctx context.Context, id string) error {
	s.mu.RLock()
	e, ok := s.cache[id]
	s.mu.RUnlock()
	ttl := s.cfg.StatusCacheTTL
	if ok && e.ws == nil {
		ttl = negativeCacheTTL
	}
	ws := e.ws
	if !ok || s.now().Sub(e.fetched) > ttl {
		var err error
		if ws, err = s.Get(ctx, id); err != nil {
			return err
		}
	}
	if ws == nil {
		return notFound(id)
	}
	if ws.Status != StatusActive {
		return apierror.New(apierror.NotFound, apierror.IDWorkspaceNotActive, "Workspace %s is not ACTIVE (status %s)", id, ws.Status)
	}
	return nil
}

// CreateInput are the caller's choices for a new workspace.
type CreateInput struct {
	Alias     string
	Tags      map[string]string
	KMSKeyARN string
}

// Create stores a new ACTIVE workspace owned by account.
func (s *Store) Create(ctx context.Context, account string, in CreateInput) (*Workspace, error) {
	owned, err := s.List(ctx, account, "")
	if err != nil {
		return nil, err
	}
	if len(owned) >= s.cfg.MaxWorkspacesPerAccount {
		return nil, apierror.New(apierror.QuotaExceeded, apierror.IDWorkspaceQuota, "Limit exceeded. Maximum workspaces per account.")
	}
	id, err := newWorkspaceID()
	if err != nil {
		return nil, err
	}
	ws := &Workspace{
		ID:        id,
		Account:   account,
		Alias:     in.Alias,
		ARN:       workspaceARN(s.cfg.Region, account, id),
		Status:    StatusActive,
		CreatedAt: s.now().UTC(),
		Tags:      in.Tags,
		KMSKeyARN: in.KMSKeyARN,
	}
	return ws, s.put(ctx, ws)
}

// List returns the workspaces of account, oldest first, optionally only those
// whose alias starts with aliasPrefix (as AMP's alias filter does).
func (s *Store) List(ctx context.Context, account, aliasPrefix string) ([]*Workspace, error) {
	var ids []string
	err := s.bkt.Iter(ctx, workspacesPrefix, func(name string) error {
		base := path.Base(name)
		if strings.HasSuffix(base, ".json") {
			ids = append(ids, strings.TrimSuffix(base, ".json"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	out := make([]*Workspace, 0, len(ids))
	for _, id := range ids {
		ws, err := s.Get(ctx, id)
		if apierror.CauseOf(err) == apierror.NotFound {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if ws.Account != account || !strings.HasPrefix(ws.Alias, aliasPrefix) {
			continue
		}
		out = append(out, ws)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Describe returns a workspace owned by account.
func (s *Store) Describe(ctx context.Context, account, id string) (*Workspace, error) {
	ws, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if ws.Account != account {
		// Another account's workspace is indistinguishable from a missing one.
		return nil, notFound(id)
	}
	return ws, nil
}

// Delete removes a workspace owned by account. Its ingested data becomes
// unreachable at once: every write and query checks the workspace first.
func (s *Store) Delete(ctx context.Context, account, id string) error {
	if _, err := s.Describe(ctx, account, id); err != nil {
		return err
	}
	if err := s.bkt.Delete(ctx, objectName(id)); err != nil && !s.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete workspace %s: %w", id, err)
	}
	s.remember(id, nil)
	return nil
}
