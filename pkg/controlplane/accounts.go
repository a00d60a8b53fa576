package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

const accountsPrefix = "control/accounts/"

// accountLockStripes is how many locks serialise the accounts' writes.
const accountLockStripes = 256

// clientTokenTTL is how long a CreateWorkspace clientToken is remembered:
// a retry within it gets the first call's result.
const clientTokenTTL = 24 * time.Hour

// maxClientTokens bounds the tokens an index remembers (the oldest go
// first), and so the index's size: SDKs send a token with every create.
const maxClientTokens = 1000

// indexesMigrated marks that every account with workspaces has an index,
// so that a missing index means an account without workspaces.
const indexesMigrated = accountsPrefix + "migrated"

// accountIndex is the document listing one account's workspaces and the
// client tokens of its recent creates. Only the account's writer (one
// replica, under the account's lock) changes it.
type accountIndex struct {
	Workspaces   []string                `json:"workspaces"`
	ClientTokens map[string]clientRecord `json:"clientTokens,omitempty"`
}

// clientRecord is what a CreateWorkspace with a clientToken created.
type clientRecord struct {
	Request   string    `json:"request"` // hash of the call's parameters
	Workspace string    `json:"workspaceId"`
	At        time.Time `json:"at"`
}

func indexName(account string) string { return accountsPrefix + account + ".json" }

// pruneTokens forgets expired tokens and, over maxClientTokens, the oldest.
func (s *Store) pruneTokens(idx *accountIndex) {
	for tok, rec := range idx.ClientTokens {
		if s.now().Sub(rec.At) > clientTokenTTL {
			delete(idx.ClientTokens, tok)
		}
	}
	if over := len(idx.ClientTokens) - s.maxTokens; over > 0 {
		toks := make([]string, 0, len(idx.ClientTokens))
		for tok := range idx.ClientTokens {
			toks = append(toks, tok)
		}
		sort.Slice(toks, func(i, j int) bool { return idx.ClientTokens[toks[i]].At.Before(idx.ClientTokens[toks[j]].At) })
		for _, tok := range toks[:over] {
			delete(idx.ClientTokens, tok)
		}
	}
}

// lock serialises the writes of one account in this replica.
func (s *Store) lock(account string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	m := &s.accounts[h.Sum32()%accountLockStripes]
	m.Lock()
	return m.Unlock
}

// index reads an account's index. Until the indexes are migrated, an
// account written before indexes existed gets one built from the workspace
// documents; after, a missing index is an account without workspaces.
func (s *Store) index(ctx context.Context, account string) (*accountIndex, error) {
	var idx accountIndex
	found, err := s.readJSON(ctx, indexName(account), &idx)
	if err != nil {
		return nil, err
	}
	if found {
		return &idx, nil
	}
	migrated, err := s.indexesMigrated(ctx)
	if err != nil {
		return nil, err
	}
	if migrated {
		return &accountIndex{}, nil
	}
	return s.rebuildIndex(ctx, account)
}

func (s *Store) indexesMigrated(ctx context.Context) (bool, error) {
	if s.migrated.Load() {
		return true, nil
	}
	ok, err := s.bkt.Exists(ctx, indexesMigrated)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", indexesMigrated, err)
	}
	s.migrated.Store(ok)
	return ok, nil
}

// MigrateIndexes gives every account that has workspaces but no index (data
// written before indexes existed) its index, once for the whole bucket;
// each replica calls it as it starts.
func (s *Store) MigrateIndexes(ctx context.Context) error {
	if done, err := s.indexesMigrated(ctx); err != nil || done {
		return err
	}
	byAccount := map[string][]string{}
	if err := s.scan(ctx, func(ws *Workspace) { byAccount[ws.Account] = append(byAccount[ws.Account], ws.ID) }); err != nil {
		return err
	}
	for account, ids := range byAccount {
		if err := s.migrateIndex(ctx, account, ids); err != nil {
			return err
		}
	}
	if err := s.bkt.Upload(ctx, indexesMigrated, bytes.NewReader(nil)); err != nil {
		return fmt.Errorf("write %s: %w", indexesMigrated, err)
	}
	s.migrated.Store(true)
	return nil
}

func (s *Store) migrateIndex(ctx context.Context, account string, ids []string) error {
	defer s.lock(account)()
	var idx accountIndex
	found, err := s.readJSON(ctx, indexName(account), &idx)
	if err != nil || found {
		return err
	}
	return s.putIndex(ctx, account, &accountIndex{Workspaces: ids})
}

// rebuildIndex finds the account's workspaces among every workspace
// document: the index of an account written before indexes existed, until
// MigrateIndexes has run.
func (s *Store) rebuildIndex(ctx context.Context, account string) (*accountIndex, error) {
	idx := &accountIndex{}
	err := s.scan(ctx, func(ws *Workspace) {
		if ws.Account == account {
			idx.Workspaces = append(idx.Workspaces, ws.ID)
		}
	})
	return idx, err
}

// scan calls f with every workspace document in the bucket.
func (s *Store) scan(ctx context.Context, f func(*Workspace)) error {
	err := s.bkt.Iter(ctx, workspacesPrefix, func(name string) error {
		id, ok := strings.CutSuffix(path.Base(name), ".json")
		if !ok {
			return nil
		}
		ws, err := s.read(ctx, id)
		if apierror.CauseOf(err) == apierror.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		f(ws)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list workspaces: %w", err)
	}
	return nil
}

func (s *Store) putIndex(ctx context.Context, account string, idx *accountIndex) error {
	s.pruneTokens(idx)
	body, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := s.bkt.Upload(ctx, indexName(account), bytes.NewReader(body)); err != nil {
		return fmt.Errorf("write index of account %s: %w", account, err)
	}
	return nil
}

// CreateInput are the caller's choices for a new workspace.
type CreateInput struct {
	Alias     string
	Tags      map[string]string
	KMSKeyARN string
	// ClientToken makes the call idempotent: a retry with the same token
	// and parameters gets the first call's workspace, not a second one.
	ClientToken string
}

// hash identifies the parameters of a create, for the clientToken check.
func (in CreateInput) hash() string {
	keys := make([]string, 0, len(in.Tags))
	for k := range in.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%q\x00%q\x00", in.Alias, in.KMSKeyARN)
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q\x00", k, in.Tags[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Create stores a new ACTIVE workspace owned by account, unless the account
// owns its quota of workspaces already. A repeated clientToken returns the
// workspace its first call created.
func (s *Store) Create(ctx context.Context, account string, in CreateInput) (*Workspace, error) {
	defer s.lock(account)()
	idx, err := s.index(ctx, account)
	if err != nil {
		return nil, err
	}
	if rec, ok := idx.ClientTokens[in.ClientToken]; ok && in.ClientToken != "" && s.now().Sub(rec.At) <= clientTokenTTL {
		if rec.Request != in.hash() {
			return nil, apierror.New(apierror.Conflict, apierror.IDClientTokenReused,
				"The clientToken %q was used before with different parameters.", in.ClientToken).About("Workspace", rec.Workspace)
		}
		ws, err := s.read(ctx, rec.Workspace)
		if err == nil {
			return ws, nil
		}
		if apierror.CauseOf(err) != apierror.NotFound {
			return nil, err
		}
		if slices.Contains(idx.Workspaces, rec.Workspace) {
			// The first call failed between the index and the document:
			// the retry, with the same parameters, finishes it.
			ws := s.newWorkspace(account, rec.Workspace, in, rec.At)
			return ws, s.put(ctx, ws)
		}
		// Deleted since: the token starts a new create.
	}
	if len(idx.Workspaces) >= s.cfg.MaxWorkspacesPerAccount {
		s.prune(ctx, idx)
	}
	if len(idx.Workspaces) >= s.cfg.MaxWorkspacesPerAccount {
		return nil, apierror.New(apierror.QuotaExceeded, apierror.IDWorkspaceQuota, "Limit exceeded. Maximum workspaces per account.").About("Workspace", account)
	}
	id, err := newWorkspaceID()
	if err != nil {
		return nil, err
	}
	ws := s.newWorkspace(account, id, in, s.now())
	// The index first: a workspace document never exists outside its
	// account's quota. An index entry whose document is missing (a crash in
	// between) is dropped by the account's next write.
	idx.Workspaces = append(idx.Workspaces, id)
	if in.ClientToken != "" {
		if idx.ClientTokens == nil {
			idx.ClientTokens = map[string]clientRecord{}
		}
		idx.ClientTokens[in.ClientToken] = clientRecord{Request: in.hash(), Workspace: id, At: s.now()}
	}
	if err := s.putIndex(ctx, account, idx); err != nil {
		return nil, err
	}
	return ws, s.put(ctx, ws)
}

func (s *Store) newWorkspace(account, id string, in CreateInput, at time.Time) *Workspace {
	return &Workspace{
		ID:        id,
		Account:   account,
		Alias:     in.Alias,
		ARN:       workspaceARN(s.cfg.Region, account, id),
		Status:    StatusActive,
		CreatedAt: at.UTC(),
		Tags:      in.Tags,
		KMSKeyARN: in.KMSKeyARN,
	}
}

// List returns the workspaces of account, oldest first, optionally only those
// whose alias starts with aliasPrefix (as AMP's alias filter does). It reads
// the account's index and its workspaces' documents only.
func (s *Store) List(ctx context.Context, account, aliasPrefix string) ([]*Workspace, error) {
	idx, err := s.index(ctx, account)
	if err != nil {
		return nil, err
	}
	out := make([]*Workspace, 0, len(idx.Workspaces))
	for _, id := range idx.Workspaces {
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
	defer s.lock(account)()
	if _, err := s.Describe(ctx, account, id); err != nil {
		return err
	}
	// Its resources (rule groups namespaces, ...) first: a failure leaves
	// the workspace, and the caller's retry finishes the delete.
	if err := s.deleteResources(ctx, id); err != nil {
		return err
	}
	if err := s.bkt.Delete(ctx, objectName(id)); err != nil && !s.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete workspace %s: %w", id, err)
	}
	s.wrote(id, nil)
	s.deletedMu.Lock()
	for _, f := range s.deleted {
		f(id)
	}
	s.deletedMu.Unlock()
	idx, err := s.index(ctx, account)
	if err != nil {
		return err
	}
	idx.Workspaces = slices.DeleteFunc(idx.Workspaces, func(w string) bool { return w == id })
	s.prune(ctx, idx)
	return s.putIndex(ctx, account, idx)
}

// prune drops the index entries whose workspace document is gone (a crash
// between writing the index and the document).
func (s *Store) prune(ctx context.Context, idx *accountIndex) {
	idx.Workspaces = slices.DeleteFunc(idx.Workspaces, func(id string) bool {
		_, err := s.read(ctx, id)
		return apierror.CauseOf(err) == apierror.NotFound
	})
}
