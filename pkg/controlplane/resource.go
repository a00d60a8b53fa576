package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
)

// resourcesPrefix holds the documents of the resources that belong to a
// workspace: resourcesPrefix<workspace>/<kind>/<hex of name>.json.
const resourcesPrefix = "control/resources/"

// Kind describes one kind of workspace resource (a rule groups namespace;
// alert manager definitions and logging configurations follow): its ARN
// type, its AMP resource type and its errors.
type Kind struct {
	// Name is the kind's folder under a workspace's resources.
	Name string
	// ARNType is the resource type of its ARNs:
	// arn:aws:aps:<region>:<account>:<ARNType>/<workspace>/<name>.
	ARNType string
	// ResourceType names it in AMP's exceptions.
	ResourceType string
	// NotFoundID and ExistsID are the error IDs of a missing resource and
	// of a create over an existing one.
	NotFoundID, ExistsID string
}

// ResourceStatus is a resource's status code (CREATING, ACTIVE, UPDATING,
// DELETING, CREATION_FAILED, UPDATE_FAILED) and, when it failed, why.
type ResourceStatus struct {
	Code   string `json:"statusCode"`
	Reason string `json:"statusReason,omitempty"`
}

// StatusUpdateFailed is the status of a resource whose last update failed.
const StatusUpdateFailed = "UPDATE_FAILED"

// Resource is one resource of a workspace, as stored: its document (data,
// a rules file say), tags, status and the clientTokens of its last
// operations. Revision counts the writes of its document.
type Resource struct {
	Kind      string            `json:"kind"`
	Workspace string            `json:"workspace"`
	Account   string            `json:"account"`
	Name      string            `json:"name"`
	ARN       string            `json:"arn"`
	Revision  int64             `json:"revision"`
	Status    ResourceStatus    `json:"status"`
	Data      []byte            `json:"data"`
	Tags      map[string]string `json:"tags,omitempty"`
	// Units is what the document holds against the workspace's quota of
	// its kind (a rules file's rules), counted when it was checked.
	Units      int       `json:"units,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	ModifiedAt time.Time `json:"modifiedAt"`
	Tokens     []opToken `json:"tokens,omitempty"`
}

func resourceFolder(workspace, kind string) string {
	return resourcesPrefix + workspace + "/" + kind + "/"
}

// resourceObject is where a resource is stored: named by the SHA-256 of
// its name, which AMP lets hold almost any character and 128 of them (the
// document holds the name itself).
func resourceObject(workspace, kind, name string) string {
	sum := sha256.Sum256([]byte(name))
	return resourceFolder(workspace, kind) + hex.EncodeToString(sum[:]) + ".json"
}

// unitsObject is the index, beside a workspace's resources of a kind, of
// their names and units: what a quota check reads, rather than every
// document.
func unitsObject(workspace, kind string) string {
	return resourceFolder(workspace, kind) + "units"
}

func (k Kind) notFound(workspace, name string) error {
	return apierror.New(apierror.NotFound, k.NotFoundID, "%s %s not found in workspace %s.", k.ResourceType, truncate(name), workspace).About(k.ResourceType, truncate(name))
}

func (k Kind) tokenReused(name, token string) error {
	return apierror.New(apierror.Conflict, apierror.IDClientTokenReused,
		"The clientToken %q was used before by another operation on %s %s.", token, k.ResourceType, truncate(name)).About(k.ResourceType, truncate(name))
}

func truncate(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// dataHash identifies a create's or put's parameters, for the clientToken
// check.
func dataHash(data []byte, tags map[string]string) string {
	h := sha256.New()
	h.Write(data)
	keys := slices.Sorted(maps.Keys(tags))
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%q=%q", k, tags[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The operations on a resource, as its clientTokens record them.
const (
	resCreate = "create"
	resPut    = "put"
	resDelete = "delete"
)

// Checks are what a kind checks of a document before it is stored.
type Checks struct {
	// Document checks the document alone and returns the units it holds
	// against the workspace's quota. It runs before any lock is taken or
	// any other resource read.
	Document func(data []byte) (units int, err error)
	// MaxUnits is the workspace's quota of units over all its resources of
	// the kind, MaxResources of resources (0: none); over either,
	// QuotaExceeded says why.
	MaxUnits, MaxResources int
	QuotaExceeded          func(what string, total, max int) error
}

// indexEntry is what the index of a workspace's resources of a kind says
// of one: its units and the version of its document (the time of its last
// write, in nanoseconds: unlike the revision, never the same for a
// resource deleted and created again).
type indexEntry struct {
	Units   int   `json:"units"`
	Version int64 `json:"version"`
}

// readResourceIndex reads the index of a workspace's resources of a kind.
func (s *Store) readResourceIndex(ctx context.Context, k Kind, workspace string) (map[string]indexEntry, error) {
	idx := map[string]indexEntry{}
	if _, err := s.readJSON(ctx, unitsObject(workspace, k.Name), &idx); err != nil {
		return nil, err
	}
	return idx, nil
}

func (s *Store) putResourceIndex(ctx context.Context, k Kind, workspace string, idx map[string]indexEntry) error {
	body, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := s.bkt.Upload(ctx, unitsObject(workspace, k.Name), bytes.NewReader(body)); err != nil {
		return fmt.Errorf("write the %s index of workspace %s: %w", k.Name, workspace, err)
	}
	return nil
}

// admit checks r against the workspace's quotas, from the index, and
// records it there. The caller holds the account's lock; the index is
// written before the document, so that a crash between the two counts a
// resource that is not there, never the other way round.
func (s *Store) admit(ctx context.Context, k Kind, r *Resource, c Checks) error {
	idx, err := s.readResourceIndex(ctx, k, r.Workspace)
	if err != nil {
		return err
	}
	_, exists := idx[r.Name]
	if c.MaxResources > 0 && !exists && len(idx)+1 > c.MaxResources {
		return c.QuotaExceeded("resources", len(idx)+1, c.MaxResources)
	}
	total := r.Units
	for name, e := range idx {
		if name != r.Name {
			total += e.Units
		}
	}
	if c.MaxUnits > 0 && total > c.MaxUnits {
		return c.QuotaExceeded("units", total, c.MaxUnits)
	}
	idx[r.Name] = indexEntry{Units: r.Units, Version: r.Version()}
	return s.putResourceIndex(ctx, k, r.Workspace, idx)
}

// Version identifies the resource's document as last written (see
// indexEntry).
func (r *Resource) Version() int64 { return r.ModifiedAt.UnixNano() }

// ResourceVersions returns the version of each resource of one kind of a
// workspace, from its index: what a reader that keeps the documents reads
// to know which changed.
func (s *Store) ResourceVersions(ctx context.Context, k Kind, workspace string) (map[string]int64, error) {
	idx, err := s.readResourceIndex(ctx, k, workspace)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(idx))
	for name, e := range idx {
		out[name] = e.Version
	}
	return out, nil
}

// ReadResource reads one resource of a workspace, whoever owns it (for a
// component, never for a caller: callers use DescribeResource); a missing
// one is a NotFound error.
func (s *Store) ReadResource(ctx context.Context, k Kind, workspace, name string) (*Resource, error) {
	r, found, err := s.readResource(ctx, k, workspace, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, k.notFound(workspace, name)
	}
	return r, nil
}

// readResource reads a resource document; found is false when there is none.
func (s *Store) readResource(ctx context.Context, k Kind, workspace, name string) (*Resource, bool, error) {
	var r Resource
	found, err := s.readJSON(ctx, resourceObject(workspace, k.Name, name), &r)
	if err != nil || !found {
		return nil, false, err
	}
	return &r, true, nil
}

func (s *Store) putResource(ctx context.Context, r *Resource) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := s.bkt.Upload(ctx, resourceObject(r.Workspace, r.Kind, r.Name), bytes.NewReader(body)); err != nil {
		return fmt.Errorf("write %s %s of workspace %s: %w", r.Kind, r.Name, r.Workspace, err)
	}
	return nil
}

// Resources returns the resources of one kind of a workspace, sorted by
// name. It does not check who owns the workspace: the callers do.
func (s *Store) Resources(ctx context.Context, k Kind, workspace string) ([]*Resource, error) {
	var names []string
	err := s.bkt.Iter(ctx, resourceFolder(workspace, k.Name), func(name string) error {
		if strings.HasSuffix(name, ".json") {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s of workspace %s: %w", k.Name, workspace, err)
	}
	out := make([]*Resource, 0, len(names))
	for _, obj := range names {
		var r Resource
		found, err := s.readJSON(ctx, obj, &r)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, &r)
		}
	}
	slices.SortFunc(out, func(a, b *Resource) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ActiveWorkspacesWith returns the ACTIVE workspaces that hold resources
// of some kind (the ruler reads their rule groups namespaces). A workspace
// whose status cannot be read fails the read: a reader that acts on the
// answer (stops evaluating a workspace) must not act on an outage.
func (s *Store) ActiveWorkspacesWith(ctx context.Context) ([]string, error) {
	var workspaces []string
	err := s.bkt.Iter(ctx, resourcesPrefix, func(name string) error {
		ws := strings.TrimSuffix(strings.TrimPrefix(name, resourcesPrefix), "/")
		if !strings.HasSuffix(name, "/") || ws == "" {
			return nil
		}
		switch err := s.CheckActive(ctx, ws); {
		case err == nil:
			workspaces = append(workspaces, ws)
		case apierror.CauseOf(err) != apierror.NotFound:
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the workspaces with resources: %w", err)
	}
	return workspaces, nil
}

// changeResource runs change on the named resource (nil: none yet) of a
// workspace owned by account, under the account's lock, and writes what it
// returns (nil: nothing).
func (s *Store) changeResource(ctx context.Context, k Kind, account, workspace, name string,
	change func(ws *Workspace, cur *Resource) (*Resource, error)) (*Resource, error) {
	defer s.lock(account)()
	ws, err := s.Describe(ctx, account, workspace)
	if err != nil {
		return nil, err
	}
	if ws.Status != StatusActive {
		return nil, apierror.New(apierror.Conflict, apierror.IDWorkspaceNotActive, "Workspace %s is not ACTIVE (status %s).", workspace, ws.Status).About("Workspace", workspace)
	}
	cur, _, err := s.readResource(ctx, k, workspace, name)
	if err != nil {
		return nil, err
	}
	next, err := change(ws, cur)
	if err != nil || next == nil {
		return next, err
	}
	return next, s.putResource(ctx, next)
}

// CreateResource stores a new resource of a workspace, ACTIVE: admit has
// checked it, and a workspace's components read it from here. A resource
// of that name is a conflict, unless this is the retry of the create that
// made it (same clientToken and parameters), which gets it back.
func (s *Store) CreateResource(ctx context.Context, k Kind, account, workspace, name string, data []byte, tags map[string]string, clientToken string, checks Checks) (*Resource, error) {
	units, err := checks.Document(data)
	if err != nil {
		return nil, err
	}
	req := dataHash(data, tags)
	var retried *Resource
	out, err := s.changeResource(ctx, k, account, workspace, name, func(ws *Workspace, cur *Resource) (*Resource, error) {
		if cur != nil {
			if clientToken != "" && s.usedToken(cur.Tokens, clientToken) {
				last := cur.Tokens[len(cur.Tokens)-1]
				if last.Token == clientToken && last.Op == resCreate && last.Request == req {
					retried = cur
					return nil, nil
				}
				return nil, k.tokenReused(name, clientToken)
			}
			return nil, apierror.New(apierror.Conflict, k.ExistsID, "%s %s already exists in workspace %s.", k.ResourceType, truncate(name), workspace).About(k.ResourceType, truncate(name))
		}
		r := s.newResource(k, account, workspace, name, data, tags, units)
		if err := s.admit(ctx, k, r, checks); err != nil {
			return nil, err
		}
		r.Tokens = s.recordToken(nil, clientToken, resCreate, req)
		return r, nil
	})
	if retried != nil {
		return retried, nil
	}
	return out, err
}

// newResource is a new resource, ACTIVE.
func (s *Store) newResource(k Kind, account, workspace, name string, data []byte, tags map[string]string, units int) *Resource {
	now := s.now().UTC()
	return &Resource{
		Kind: k.Name, Workspace: workspace, Account: account, Name: name,
		ARN:      auth.ARN{Region: s.cfg.Region, Account: account, Type: k.ARNType, ID: workspace, Name: name}.String(),
		Revision: 1, Status: ResourceStatus{Code: StatusActive}, Data: data, Tags: tags, Units: units,
		CreatedAt: now, ModifiedAt: now,
	}
}

// replaced is cur with a new document, in force at once.
func (s *Store) replaced(cur *Resource, data []byte, units int) *Resource {
	next := *cur
	next.Data, next.Units, next.Revision, next.ModifiedAt = data, units, cur.Revision+1, s.now().UTC()
	next.Status = ResourceStatus{Code: StatusActive}
	return &next
}

// EditResource changes the document of a resource by edit, under the
// account's lock, so that edits of parts of one document (a rules file's
// groups) are not lost to each other. edit gets the current document (nil:
// no resource) and returns the next: a new one is created, a changed one
// replaced, both checked as CreateResource and PutResource check; nil
// deletes the resource. An edit that returns an error changes nothing.
func (s *Store) EditResource(ctx context.Context, k Kind, account, workspace, name string, edit func(cur []byte) ([]byte, error), checks Checks) error {
	_, err := s.changeResource(ctx, k, account, workspace, name, func(_ *Workspace, cur *Resource) (*Resource, error) {
		var old []byte
		if cur != nil {
			old = cur.Data
		}
		data, err := edit(old)
		switch {
		case err != nil:
			return nil, err
		case data == nil && cur == nil:
			return nil, nil
		case data == nil:
			return nil, s.removeResource(ctx, k, workspace, name)
		}
		units, err := checks.Document(data)
		if err != nil {
			return nil, err
		}
		var next *Resource
		if cur == nil {
			next = s.newResource(k, account, workspace, name, data, nil, units)
		} else {
			next = s.replaced(cur, data, units)
			next.Tokens = cur.Tokens
		}
		return next, s.admit(ctx, k, next, checks)
	})
	return err
}

// PutResource replaces the document of an existing resource, in force at
// once. A retry of the put (same clientToken and document) is answered
// without writing again.
func (s *Store) PutResource(ctx context.Context, k Kind, account, workspace, name string, data []byte, clientToken string, checks Checks) (*Resource, error) {
	units, err := checks.Document(data)
	if err != nil {
		return nil, err
	}
	req := dataHash(data, nil)
	var retried *Resource
	out, err := s.changeResource(ctx, k, account, workspace, name, func(ws *Workspace, cur *Resource) (*Resource, error) {
		if cur == nil {
			return nil, k.notFound(workspace, name)
		}
		if clientToken != "" && s.usedToken(cur.Tokens, clientToken) {
			last := cur.Tokens[len(cur.Tokens)-1]
			if last.Token == clientToken && last.Op == resPut && last.Request == req {
				retried = cur
				return nil, nil
			}
			return nil, k.tokenReused(name, clientToken)
		}
		next := s.replaced(cur, data, units)
		if err := s.admit(ctx, k, next, checks); err != nil {
			return nil, err
		}
		next.Tokens = s.recordToken(cur.Tokens, clientToken, resPut, req)
		return next, nil
	})
	if retried != nil {
		return retried, nil
	}
	return out, err
}

// DescribeResource returns a resource of a workspace owned by account.
func (s *Store) DescribeResource(ctx context.Context, k Kind, account, workspace, name string) (*Resource, error) {
	if _, err := s.Describe(ctx, account, workspace); err != nil {
		return nil, err
	}
	return s.ReadResource(ctx, k, workspace, name)
}

// ListResources returns the resources of one kind of a workspace owned by
// account, sorted by name, those whose name starts with prefix only.
func (s *Store) ListResources(ctx context.Context, k Kind, account, workspace, prefix string) ([]*Resource, error) {
	if _, err := s.Describe(ctx, account, workspace); err != nil {
		return nil, err
	}
	all, err := s.Resources(ctx, k, workspace)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(r *Resource) bool { return !strings.HasPrefix(r.Name, prefix) }), nil
}

// deletedTokens is the object, beside a workspace's resources of a kind,
// recording the clientTokens of their last deletes (the name of the
// resource each deleted, as Request), so that a retried delete is
// answered as the first was.
func deletedTokens(workspace, kind string) string {
	return resourceFolder(workspace, kind) + "deleted-tokens"
}

// DeleteResource removes a resource of a workspace owned by account. The
// retry of the delete that removed it (same clientToken) is answered as it
// was; another missing resource is not found.
func (s *Store) DeleteResource(ctx context.Context, k Kind, account, workspace, name, clientToken string) error {
	defer s.lock(account)()
	if _, err := s.Describe(ctx, account, workspace); err != nil {
		return err
	}
	var deleted []opToken
	if _, err := s.readJSON(ctx, deletedTokens(workspace, k.Name), &deleted); err != nil {
		return err
	}
	cur, found, err := s.readResource(ctx, k, workspace, name)
	if err != nil {
		return err
	}
	// A retry of a delete of this resource with this token: it removed
	// the resource (answered as it was), or failed before (done again).
	retry := s.usedToken(deleted, clientToken) && slices.ContainsFunc(deleted, func(t opToken) bool {
		return t.Token == clientToken && t.Request == name
	})
	if !found {
		switch {
		case retry:
			return nil
		case s.usedToken(deleted, clientToken):
			return k.tokenReused(name, clientToken)
		}
		return k.notFound(workspace, name)
	}
	if !retry && (s.usedToken(cur.Tokens, clientToken) || s.usedToken(deleted, clientToken)) {
		return k.tokenReused(name, clientToken)
	}
	if clientToken != "" && !retry {
		body, err := json.Marshal(s.recordToken(deleted, clientToken, resDelete, name))
		if err != nil {
			return err
		}
		if err := s.bkt.Upload(ctx, deletedTokens(workspace, k.Name), bytes.NewReader(body)); err != nil {
			return fmt.Errorf("record the delete of %s %s of workspace %s: %w", k.Name, name, workspace, err)
		}
	}
	return s.removeResource(ctx, k, workspace, name)
}

// removeResource deletes a resource's document, then its index entry. The
// caller holds the account's lock.
func (s *Store) removeResource(ctx context.Context, k Kind, workspace, name string) error {
	if err := s.bkt.Delete(ctx, resourceObject(workspace, k.Name, name)); err != nil && !s.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete %s %s of workspace %s: %w", k.Name, name, workspace, err)
	}
	idx, err := s.readResourceIndex(ctx, k, workspace)
	if err != nil {
		return err
	}
	if _, ok := idx[name]; ok {
		delete(idx, name)
		return s.putResourceIndex(ctx, k, workspace, idx)
	}
	return nil
}

// TagResourceByName adds tags to (or, with untag, removes keys from) a
// resource of a workspace owned by account.
func (s *Store) TagResourceByName(ctx context.Context, k Kind, account, workspace, name string, tags map[string]string, untag []string) error {
	_, err := s.changeResource(ctx, k, account, workspace, name, func(_ *Workspace, cur *Resource) (*Resource, error) {
		if cur == nil {
			return nil, k.notFound(workspace, name)
		}
		next := *cur
		next.Tags = maps.Clone(cur.Tags)
		if next.Tags == nil {
			next.Tags = map[string]string{}
		}
		maps.Copy(next.Tags, tags)
		for _, key := range untag {
			delete(next.Tags, key)
		}
		if err := validateTags(next.Tags); err != nil {
			return nil, err
		}
		return &next, nil
	})
	return err
}

// LookupResource returns a resource of a workspace as authorisation sees
// it (its ARN and tags), whatever its account; a missing one is a NotFound
// error.
func (s *Store) LookupResource(ctx context.Context, workspace, arnType, name string) (*auth.Resource, error) {
	k, ok := kinds[arnType]
	if !ok || (arnType == auth.TypeRuleGroupsNamespace && validNamespaceName(name) != nil) {
		return nil, apierror.New(apierror.NotFound, apierror.IDWorkspaceNotFound, "Resource not found: %s/%s/%s", arnType, workspace, truncate(name))
	}
	r, found, err := s.readResource(ctx, k, workspace, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, k.notFound(workspace, name)
	}
	return &auth.Resource{Account: r.Account, ARN: r.ARN, Active: true, Tags: r.Tags}, nil
}

// kinds are the kinds of resource, by ARN type.
var kinds = map[string]Kind{auth.TypeRuleGroupsNamespace: RuleGroupsNamespaces}

// deleteResources removes every resource of a deleted workspace.
func (s *Store) deleteResources(ctx context.Context, workspace string) error {
	var objects []string
	err := s.bkt.Iter(ctx, resourcesPrefix+workspace+"/", func(name string) error {
		objects = append(objects, name)
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("list the resources of workspace %s: %w", workspace, err)
	}
	for _, obj := range objects {
		if err := s.bkt.Delete(ctx, obj); err != nil && !s.bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("delete %s: %w", obj, err)
		}
	}
	return nil
}
