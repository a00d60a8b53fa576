// Package controlplane keeps Vigil's AMP resources (for now: workspaces) as
// JSON documents in object storage and serves the AMP REST API over them.
package controlplane

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/vigil-metrics/vigil/pkg/auth"
)

// Workspace statuses, as AMP names them.
const (
	StatusCreating       = "CREATING"
	StatusActive         = "ACTIVE"
	StatusUpdating       = "UPDATING"
	StatusDeleting       = "DELETING"
	StatusCreationFailed = "CREATION_FAILED"
)

// Workspace is the stored document of one workspace.
type Workspace struct {
	ID        string            `json:"workspaceId"`
	Account   string            `json:"account"`
	Alias     string            `json:"alias,omitempty"`
	ARN       string            `json:"arn"`
	Status    string            `json:"status"`
	CreatedAt time.Time         `json:"createdAt"`
	Tags      map[string]string `json:"tags,omitempty"`
	KMSKeyARN string            `json:"kmsKeyArn,omitempty"`

	// Configuration is what UpdateWorkspaceConfiguration set; nil: the
	// defaults.
	Configuration *Configuration `json:"configuration,omitempty"`
	// Policy is the workspace's resource policy; nil: none.
	Policy *ResourcePolicy `json:"policy,omitempty"`
	// PolicyTokens are the clientTokens of the last policy operations.
	PolicyTokens []opToken `json:"policyTokens,omitempty"`
	// QueryLogging is the workspace's query logging configuration; nil:
	// none. It goes with the workspace's document when that is deleted.
	QueryLogging *QueryLoggingConfiguration `json:"queryLogging,omitempty"`
	// QueryLoggingTokens are the clientTokens of the last query logging
	// operations.
	QueryLoggingTokens []opToken `json:"queryLoggingTokens,omitempty"`

	// resource is the document as authorisation sees it, built when the
	// document is read or written.
	resource *auth.Resource
}

// Configuration is a workspace's configuration (AMP's
// WorkspaceConfigurationDescription).
type Configuration struct {
	// RetentionPeriodInDays overrides the compactor's retention; 0: the
	// default.
	RetentionPeriodInDays int             `json:"retentionPeriodInDays,omitempty"`
	LimitsPerLabelSet     []LabelSetLimit `json:"limitsPerLabelSet,omitempty"`
	// OutOfOrderTimeWindowInSeconds is how far behind the workspace's
	// newest sample a sample may be stored out of order; nil: the
	// ingesters' default (0 turns out-of-order ingestion off whatever the
	// default).
	OutOfOrderTimeWindowInSeconds *int `json:"outOfOrderTimeWindowInSeconds,omitempty"`
	// RuleQueryOffsetInSeconds is how far back from their evaluation time
	// the workspace's rules query; nil: the ruler's default
	// (-ruler.query-offset). A group's own query_offset wins over both.
	RuleQueryOffsetInSeconds *int `json:"ruleQueryOffsetInSeconds,omitempty"`
}

// LabelSetLimit is an active-series limit for the series carrying a label
// set; an empty label set is the default bucket of the series matching no
// other entry.
type LabelSetLimit struct {
	LabelSet map[string]string `json:"labelSet"`
	Limits   struct {
		MaxSeries int64 `json:"maxSeries"`
	} `json:"limits"`
}

// ResourcePolicy is a workspace's resource-based policy.
type ResourcePolicy struct {
	Document   string `json:"document"`
	RevisionID string `json:"revisionId"`
	// ClientToken is the clientToken of the PutResourcePolicy that set it:
	// a retry with the same token and document gets the same revision.
	ClientToken string `json:"clientToken,omitempty"`
}

// opToken records a clientToken an operation on a workspace's policy or
// query logging configuration used, so that a late retry is answered,
// never applied again.
type opToken struct {
	Token string `json:"token"`
	Op    string `json:"op"` // "put", "delete"; "create", "update"
	// Request is the hash of the operation's parameters, where a retry
	// must repeat them.
	Request string    `json:"request,omitempty"`
	At      time.Time `json:"at"`
}

// build derives the authorisation view of the document. A stored policy
// is compiled, not validated again: it was validated when it was put, and
// one that rules since made stricter would otherwise lose its Deny
// statements too (resource policies only ever decide data-plane actions).
func (ws *Workspace) build() *Workspace {
	r := &auth.Resource{Account: ws.Account, ARN: ws.ARN, Active: ws.Status == StatusActive, Tags: ws.Tags}
	if ws.Policy != nil {
		r.Policy, _ = auth.ParsePolicy([]byte(ws.Policy.Document), true)
	}
	ws.resource = r
	return ws
}

// newWorkspaceID returns "ws-" followed by a random (version 4) UUID, the
// shape of AMP's workspace IDs.
func newWorkspaceID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("ws-%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// workspaceARN returns the ARN AMP gives a workspace.
func workspaceARN(region, account, id string) string { return auth.WorkspaceARN(region, account, id) }
