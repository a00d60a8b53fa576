package controlplane

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
)

// update changes a workspace owned by account under the account's lock:
// read, change, write. change returns an error to write nothing.
func (s *Store) update(ctx context.Context, account, id string, change func(ws *Workspace) error) (*Workspace, error) {
	defer s.lock(account)()
	if _, err := s.Describe(ctx, account, id); err != nil {
		return nil, err
	}
	ws, err := s.read(ctx, id) // a fresh copy: cached documents are shared
	if err != nil {
		return nil, err
	}
	if ws.Status != StatusActive {
		return nil, apierror.New(apierror.Conflict, apierror.IDWorkspaceNotActive, "Workspace %s is not ACTIVE (status %s).", id, ws.Status).About("Workspace", id)
	}
	if err := change(ws); errors.Is(err, errUnchanged) {
		return ws, nil
	} else if err != nil {
		return nil, err
	}
	return ws, s.put(ctx, ws)
}

// errUnchanged tells update that nothing is to be written.
var errUnchanged = errors.New("unchanged")

// UpdateAlias sets a workspace's alias ("" removes it).
func (s *Store) UpdateAlias(ctx context.Context, account, id, alias string) error {
	_, err := s.update(ctx, account, id, func(ws *Workspace) error {
		ws.Alias = alias
		return nil
	})
	return err
}

// ConfigurationUpdate is an UpdateWorkspaceConfiguration: nil fields stay.
type ConfigurationUpdate struct {
	RetentionPeriodInDays         *int
	LimitsPerLabelSet             *[]LabelSetLimit
	OutOfOrderTimeWindowInSeconds *int
	RuleQueryOffsetInSeconds      *int
}

// UpdateConfiguration changes a workspace's configuration.
func (s *Store) UpdateConfiguration(ctx context.Context, account, id string, in ConfigurationUpdate) error {
	_, err := s.update(ctx, account, id, func(ws *Workspace) error {
		cfg := Configuration{}
		if ws.Configuration != nil {
			cfg = *ws.Configuration
		}
		if in.RetentionPeriodInDays != nil {
			cfg.RetentionPeriodInDays = *in.RetentionPeriodInDays
		}
		if in.LimitsPerLabelSet != nil {
			cfg.LimitsPerLabelSet = *in.LimitsPerLabelSet
		}
		if in.OutOfOrderTimeWindowInSeconds != nil {
			cfg.OutOfOrderTimeWindowInSeconds = in.OutOfOrderTimeWindowInSeconds
		}
		if in.RuleQueryOffsetInSeconds != nil {
			cfg.RuleQueryOffsetInSeconds = in.RuleQueryOffsetInSeconds
		}
		ws.Configuration = &cfg
		return nil
	})
	return err
}

// noPolicy is the revisionId that asserts there is no policy yet.
const noPolicy = "NO_POLICY"

func policyNotFound(id string) error {
	return apierror.New(apierror.NotFound, apierror.IDPolicyNotFound, "No resource policy found for workspace %s.", id).About("ResourcePolicy", id)
}

func revisionConflict(id string) error {
	return apierror.New(apierror.Conflict, apierror.IDRevisionMismatch,
		"The revisionId does not match the current revision of the resource policy of workspace %s.", id).About("ResourcePolicy", id)
}

// PutPolicy sets a workspace's resource policy and returns its new
// revision. A non-empty revisionID must be the current one (optimistic
// concurrency, as AMP's revisionId).
func (s *Store) PutPolicy(ctx context.Context, account, id, document, revisionID, clientToken string) (string, error) {
	rev, err := newRevision()
	if err != nil {
		return "", err
	}
	_, err = s.update(ctx, account, id, func(ws *Workspace) error {
		if p := ws.Policy; p != nil && clientToken != "" && p.ClientToken == clientToken {
			if p.Document != document {
				return tokenReused(id, clientToken)
			}
			rev = p.RevisionID // a retry: the first call's revision
			return errUnchanged
		}
		if s.usedToken(ws.PolicyTokens, clientToken) {
			// A retry arriving after the policy changed again: applying
			// it would undo the later change.
			return tokenReused(id, clientToken)
		}
		switch {
		case revisionID == noPolicy:
			// AMP: NO_POLICY asserts the workspace has no policy yet.
			if ws.Policy != nil {
				return revisionConflict(id)
			}
		case revisionID != "" && (ws.Policy == nil || ws.Policy.RevisionID != revisionID):
			return revisionConflict(id)
		}
		if _, err := auth.ValidateResourcePolicy([]byte(document), ws.ARN); err != nil {
			return apierror.New(apierror.BadData, apierror.IDValidation, "The policy document is not valid: %v", err)
		}
		ws.Policy = &ResourcePolicy{Document: document, RevisionID: rev, ClientToken: clientToken}
		ws.PolicyTokens = s.recordToken(ws.PolicyTokens, clientToken, "put", "")
		return nil
	})
	return rev, err
}

// DeletePolicy removes a workspace's resource policy.
func (s *Store) DeletePolicy(ctx context.Context, account, id, revisionID, clientToken string) error {
	_, err := s.update(ctx, account, id, func(ws *Workspace) error {
		if s.usedToken(ws.PolicyTokens, clientToken) {
			if ws.Policy == nil && ws.PolicyTokens[len(ws.PolicyTokens)-1].Token == clientToken {
				return errUnchanged // a retry of the delete that removed it
			}
			return tokenReused(id, clientToken)
		}
		if ws.Policy == nil {
			return policyNotFound(id)
		}
		if revisionID != "" && ws.Policy.RevisionID != revisionID {
			return revisionConflict(id)
		}
		ws.Policy = nil
		ws.PolicyTokens = s.recordToken(ws.PolicyTokens, clientToken, "delete", "")
		return nil
	})
	return err
}

// Policy returns a workspace's resource policy.
func (s *Store) Policy(ctx context.Context, account, id string) (*ResourcePolicy, error) {
	ws, err := s.Describe(ctx, account, id)
	if err != nil {
		return nil, err
	}
	if ws.Policy == nil {
		return nil, policyNotFound(id)
	}
	return ws.Policy, nil
}

// Tag adds or replaces tags of a workspace, up to the 50 a resource may
// carry.
func (s *Store) Tag(ctx context.Context, account, id string, tags map[string]string) error {
	_, err := s.update(ctx, account, id, func(ws *Workspace) error {
		merged := maps.Clone(ws.Tags)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, tags)
		if err := validateTags(merged); err != nil {
			return err
		}
		ws.Tags = merged
		return nil
	})
	return err
}

// Untag removes tags of a workspace; keys it does not carry are ignored.
func (s *Store) Untag(ctx context.Context, account, id string, keys []string) error {
	_, err := s.update(ctx, account, id, func(ws *Workspace) error {
		tags := maps.Clone(ws.Tags)
		for _, k := range keys {
			delete(tags, k)
		}
		if len(tags) == 0 {
			tags = nil
		}
		ws.Tags = tags
		return nil
	})
	return err
}

// The clientTokens of policy and query logging operations are remembered
// this long, and this many per workspace and resource.
const (
	policyTokenTTL = 24 * time.Hour
	maxPolicyToken = 50
)

func tokenReused(id, token string) error {
	return apierror.New(apierror.Conflict, apierror.IDClientTokenReused,
		"The clientToken %q was used before by another operation on the resource policy of workspace %s.", token, id).About("ResourcePolicy", id)
}

// usedToken tells whether an operation of the last day recorded in tokens
// used token.
func (s *Store) usedToken(tokens []opToken, token string) bool {
	if token == "" {
		return false
	}
	for _, t := range tokens {
		if t.Token == token && s.now().Sub(t.At) <= policyTokenTTL {
			return true
		}
	}
	return false
}

// recordToken returns tokens with the token of an operation (and the hash
// of its request, if it has one) added, the expired ones and, over
// maxPolicyToken, the oldest forgotten.
func (s *Store) recordToken(tokens []opToken, token, op, request string) []opToken {
	if token == "" {
		return tokens
	}
	kept := tokens[:0:0]
	for _, t := range tokens {
		if s.now().Sub(t.At) <= policyTokenTTL {
			kept = append(kept, t)
		}
	}
	kept = append(kept, opToken{Token: token, Op: op, Request: request, At: s.now().UTC()})
	if over := len(kept) - maxPolicyToken; over > 0 {
		kept = kept[over:]
	}
	return kept
}

// newRevision returns a random revision ID.
func newRevision() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
