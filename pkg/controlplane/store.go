package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/grpcclient"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

const workspacesPrefix = "control/workspaces/"

// Config configures the control plane.
type Config struct {
	Region                  string        `yaml:"region"`
	MaxWorkspacesPerAccount int           `yaml:"max_workspaces_per_account"`
	StatusCacheTTL          time.Duration `yaml:"status_cache_ttl"`
	PublicURL               string        `yaml:"public_url"`
	// Client dials the replica an account's writes are handed to.
	Client grpcclient.Config `yaml:"grpc_client_config"`

	// Ring is the ring of the replicas serving the control plane: each
	// account's writes go to the one replica its name hashes to.
	Ring ringmember.Config `yaml:"ring"`
}

// ringDefaults are the control-plane ring's flag defaults. Replicas hold no
// data: they leave the ring on shutdown, and a crashed one is forgotten
// soon, so that its accounts move to another replica.
var ringDefaults = ringmember.Defaults{
	Member:                     "control-plane replica",
	ReplicationFactor:          1,
	NumTokens:                  128,
	UnregisterOnShutdown:       true,
	AutoForgetUnhealthyPeriods: 2,
}

// RegisterFlags registers the control-plane flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Region, "controlplane.region", "us-east-1", "Region named in the ARNs of resources.")
	f.IntVar(&c.MaxWorkspacesPerAccount, "controlplane.max-workspaces-per-account", 25, "Maximum workspaces one account may own. AMP quota: 25 workspaces per account per region.")
	f.DurationVar(&c.StatusCacheTTL, "controlplane.status-cache-ttl", 10*time.Second, "How long the data plane trusts a cached workspace status before reading it again from object storage. A deleted workspace may accept requests for up to this long on other replicas.")
	f.StringVar(&c.PublicURL, "controlplane.public-url", "", "Base URL shown in prometheusEndpoint. Empty: derived from the request's Host header.")
	c.Client.RegisterFlagsWithPrefix("controlplane.client", f)
	c.Ring.RegisterFlagsWithPrefix("controlplane.ring.", ringDefaults, f)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Region == "" {
		return fmt.Errorf("controlplane.region must not be empty")
	}
	if c.MaxWorkspacesPerAccount <= 0 {
		return fmt.Errorf("controlplane.max-workspaces-per-account must be positive")
	}
	if c.Ring.ReplicationFactor != 1 {
		return fmt.Errorf("controlplane.ring.replication-factor must be 1: each account has one writer")
	}
	if err := c.Client.Validate(); err != nil {
		return fmt.Errorf("controlplane.client: %w", err)
	}
	return c.Ring.Validate()
}

// Dialer returns how a replica dials the replica it hands an account's
// writes to, with the -controlplane.client.* settings.
func (c *Config) Dialer() (func(addr string) (*grpc.ClientConn, error), error) {
	return ringmember.Dialer(c.Client)
}

// negativeCacheTTL bounds how long a missing workspace is remembered, so that
// a workspace created through another replica becomes usable quickly while
// requests for unknown IDs do not each cost an object-storage read.
const negativeCacheTTL = time.Second

// While object storage cannot be read, a known workspace keeps the status
// last read for at most maxStaleStatus (a workspace deleted through another
// replica meanwhile accepts requests here that long), and its status is read
// again at most every staleRetry, each read bounded by statusReadTimeout.
const (
	maxStaleStatus    = 15 * time.Minute
	staleRetry        = 5 * time.Second
	statusReadTimeout = 5 * time.Second
)

type cacheEntry struct {
	ws      *Workspace // nil: does not exist
	fetched time.Time
	// retryAt: object storage could not be read; the entry serves until
	// then without another read.
	retryAt time.Time
	// written is the write sequence number of a write this replica made;
	// a read that began before it must not overwrite the entry.
	written uint64
}

// Store reads and writes workspace documents and answers the data plane's
// "is this workspace active?" from a short-lived cache. Writes to one
// account's documents are serialised in this replica; the replicas of a
// cluster send them to the account's owner (see Handler), so that there is
// one writer per account.
type Store struct {
	cfg Config
	bkt objstore.Bucket
	now func() time.Time

	mu      sync.RWMutex
	cache   map[string]cacheEntry
	missing int    // entries of cache with a nil workspace from a read
	seq     uint64 // the last write sequence number

	accounts [accountLockStripes]sync.Mutex

	deletedMu sync.Mutex
	deleted   []func(id string)

	migrated  atomic.Bool // every account with workspaces has an index
	maxTokens int         // client tokens an index remembers
}

// OnDeleted registers f, called with the ID of every workspace this replica
// deletes.
func (s *Store) OnDeleted(f func(id string)) {
	s.deletedMu.Lock()
	defer s.deletedMu.Unlock()
	s.deleted = append(s.deleted, f)
}

// NewStore returns a Store over bkt.
func NewStore(cfg Config, bkt objstore.Bucket) *Store {
	return &Store{cfg: cfg, bkt: bkt, now: time.Now, cache: map[string]cacheEntry{}, maxTokens: maxClientTokens}
}

func objectName(id string) string { return workspacesPrefix + id + ".json" }

func notFound(id string) error {
	if len(id) > 128 {
		id = id[:128] + "..."
	}
	return apierror.New(apierror.NotFound, apierror.IDWorkspaceNotFound, "Workspace not found: %s", id).About("Workspace", id)
}

// Get reads a workspace document. A missing workspace is a NotFound error.
func (s *Store) Get(ctx context.Context, id string) (*Workspace, error) {
	if tenant.ValidID(id) != nil {
		return nil, notFound(id)
	}
	s.mu.RLock()
	started := s.seq
	s.mu.RUnlock()
	ws, err := s.read(ctx, id)
	if err != nil {
		if apierror.CauseOf(err) == apierror.NotFound {
			s.remember(id, nil, started)
		}
		return nil, err
	}
	s.remember(id, ws, started)
	return ws, nil
}

// read reads a workspace document, uncached.
func (s *Store) read(ctx context.Context, id string) (*Workspace, error) {
	var ws Workspace
	found, err := s.readJSON(ctx, objectName(id), &ws)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, notFound(id)
	}
	return ws.build(), nil
}

// readJSON decodes the JSON document name into v; found is false when there
// is no such document.
func (s *Store) readJSON(ctx context.Context, name string, v any) (found bool, err error) {
	r, err := s.bkt.Get(ctx, name)
	if s.bkt.IsObjNotFoundErr(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", name, err)
	}
	defer r.Close()
	body, err := io.ReadAll(io.LimitReader(r, maxDocumentSize+1))
	if err != nil {
		return false, fmt.Errorf("read %s: %w", name, err)
	}
	if len(body) > maxDocumentSize {
		return false, fmt.Errorf("read %s: larger than %d bytes", name, maxDocumentSize)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", name, err)
	}
	return true, nil
}

// maxDocumentSize bounds what is read of one control-plane document.
const maxDocumentSize = 4 << 20

func (s *Store) put(ctx context.Context, ws *Workspace) error {
	ws.build()
	body, err := json.Marshal(ws)
	if err != nil {
		return err
	}
	if err := s.bkt.Upload(ctx, objectName(ws.ID), bytes.NewReader(body)); err != nil {
		return fmt.Errorf("write workspace %s: %w", ws.ID, err)
	}
	s.wrote(ws.ID, ws)
	return nil
}

// maxMissing bounds the remembered unknown IDs, which any caller can invent.
const maxMissing = 10_000

// remember caches what a read that began at write sequence started found,
// unless this replica wrote the workspace since: a read that raced a
// delete must not bring the deleted workspace back as ACTIVE.
func (s *Store) remember(id string, ws *Workspace, started uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.cache[id]; ok && old.written > started {
		return
	}
	s.set(id, cacheEntry{ws: ws, fetched: s.now()})
}

// wrote caches what this replica just wrote (nil: deleted).
func (s *Store) wrote(id string, ws *Workspace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.set(id, cacheEntry{ws: ws, fetched: s.now(), written: s.seq})
}

// set stores a cache entry; s.mu is held.
func (s *Store) set(id string, e cacheEntry) {
	old, had := s.cache[id]
	if had && old.ws == nil && old.written == 0 {
		s.missing--
	}
	if e.ws == nil && e.written == 0 {
		if s.missing >= maxMissing {
			for k, c := range s.cache {
				if c.ws == nil && c.written == 0 {
					delete(s.cache, k)
				}
			}
			s.missing = 0
		}
		s.missing++
	}
	s.cache[id] = e
}

// cached returns the workspace document from the status cache, read again
// after StatusCacheTTL. It is on the hot path of every write and query.
// While object storage cannot be read, the document last read stands:
// writes and queries of known workspaces go on through an outage; an
// unknown workspace gets 503, which senders retry.
func (s *Store) cached(ctx context.Context, id string) (*Workspace, error) {
	s.mu.RLock()
	e, ok := s.cache[id]
	s.mu.RUnlock()
	ttl := s.cfg.StatusCacheTTL
	if ok && e.ws == nil {
		ttl = negativeCacheTTL
	}
	ws := e.ws
	now := s.now()
	if !ok || (now.Sub(e.fetched) > ttl && !now.Before(e.retryAt)) {
		readCtx, cancel := context.WithTimeout(ctx, statusReadTimeout)
		fresh, err := s.Get(readCtx, id)
		cancel()
		switch {
		case err == nil:
			ws = fresh
		case apierror.CauseOf(err) == apierror.NotFound:
			return nil, err
		case !ok || e.ws == nil || now.Sub(e.fetched) > maxStaleStatus:
			// Unknown, known missing (it may have been created since), or
			// known too long ago: the sender retries.
			return nil, apierror.New(apierror.Unavailable, apierror.IDStorageUnavailable, "cannot read the status of workspace %s from object storage: %v", id, err)
		default:
			s.mu.Lock()
			if cur, ok := s.cache[id]; ok && cur.fetched.Equal(e.fetched) {
				cur.retryAt = now.Add(staleRetry)
				s.cache[id] = cur
			}
			s.mu.Unlock()
		}
	} else if ok && now.Sub(e.fetched) > ttl && e.ws != nil && now.Sub(e.fetched) > maxStaleStatus {
		return nil, apierror.New(apierror.Unavailable, apierror.IDStorageUnavailable, "cannot read the status of workspace %s from object storage", id)
	}
	if ws == nil {
		return nil, notFound(id)
	}
	return ws, nil
}

// Lookup returns the workspace as authorisation sees it, whatever its
// account and status; a missing workspace is a NotFound error.
func (s *Store) Lookup(ctx context.Context, id string) (*auth.Resource, error) {
	ws, err := s.cached(ctx, id)
	if err != nil {
		return nil, err
	}
	return ws.resource, nil
}

// Configuration returns a workspace's configuration (nil: the defaults),
// from the status cache.
func (s *Store) Configuration(ctx context.Context, id string) (*Configuration, error) {
	ws, err := s.cached(ctx, id)
	if err != nil {
		return nil, err
	}
	return ws.Configuration, nil
}

// CheckActive returns nil when the workspace exists and is ACTIVE, and a
// NotFound error otherwise. A workspace of another account than the one in
// ctx (if any) is indistinguishable from a missing one.
func (s *Store) CheckActive(ctx context.Context, id string) error {
	ws, err := s.cached(ctx, id)
	if err != nil {
		return err
	}
	if acct, ok := tenant.Account(ctx); ok && ws.Account != acct {
		return notFound(id)
	}
	if ws.Status != StatusActive {
		return apierror.New(apierror.NotFound, apierror.IDWorkspaceNotActive, "Workspace %s is not ACTIVE (status %s)", id, ws.Status)
	}
	return nil
}
