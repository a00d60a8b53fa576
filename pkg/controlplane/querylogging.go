package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// QueryLoggingConfiguration is a workspace's query logging configuration
// (AMP's QueryLoggingConfigurationMetadata), kept in the workspace's
// document: it is written, replicated and deleted with it.
type QueryLoggingConfiguration struct {
	// Destinations holds exactly one destination, as AMP's model requires.
	Destinations []LoggingDestination `json:"destinations"`
	Status       string               `json:"status"`
	CreatedAt    time.Time            `json:"createdAt"`
	ModifiedAt   time.Time            `json:"modifiedAt"`
}

// LoggingDestination is where a workspace's query logs go and which
// queries are logged (AMP's LoggingDestination).
type LoggingDestination struct {
	CloudWatchLogs CloudWatchLogDestination `json:"cloudWatchLogs"`
	Filters        LoggingFilter            `json:"filters"`
}

// CloudWatchLogDestination names a CloudWatch Logs log group; the operator
// maps it to a sink of this process (see -query-logging.sink).
type CloudWatchLogDestination struct {
	LogGroupARN string `json:"logGroupArn"`
}

// LoggingFilter selects the queries that are logged.
type LoggingFilter struct {
	// QSPThreshold: a query is logged when it processed more samples
	// than this.
	QSPThreshold int64 `json:"qspThreshold"`
}

// The operations of the query logging configuration, as its clientTokens
// record them.
const (
	qlCreate = "create"
	qlUpdate = "update"
	qlDelete = "delete"
)

func queryLoggingNotFound(id string) error {
	return apierror.New(apierror.NotFound, apierror.IDQueryLoggingNotFound,
		"Query logging configuration not found for workspace %s.", id).About("QueryLoggingConfiguration", id)
}

func queryLoggingExists(id string) error {
	return apierror.New(apierror.Conflict, apierror.IDQueryLoggingExists,
		"A query logging configuration already exists for workspace %s.", id).About("QueryLoggingConfiguration", id)
}

func queryLoggingTokenReused(id, token string) error {
	return apierror.New(apierror.Conflict, apierror.IDClientTokenReused,
		"The clientToken %q was used before by another operation on the query logging configuration of workspace %s.", token, id).About("QueryLoggingConfiguration", id)
}

// destinationsHash identifies the parameters of a create or update, for
// the clientToken check.
func destinationsHash(dests []LoggingDestination) string {
	body, _ := json.Marshal(dests)
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// retriedQueryLogging tells whether a query logging operation is the retry
// of the last one (same token, operation and parameters), to be answered
// without applying it again. A token used by any other operation of the
// last day is a conflict: a late retry must not undo a later change.
func (s *Store) retriedQueryLogging(ws *Workspace, token, op, request string) (bool, error) {
	if !s.usedToken(ws.QueryLoggingTokens, token) {
		return false, nil
	}
	last := ws.QueryLoggingTokens[len(ws.QueryLoggingTokens)-1]
	if last.Token == token && last.Op == op && last.Request == request {
		return true, nil
	}
	return false, queryLoggingTokenReused(ws.ID, token)
}

// CreateQueryLogging gives a workspace its query logging configuration, in
// force at once (ACTIVE). A workspace that has one already is a conflict,
// unless this is the retry of the create that made it.
func (s *Store) CreateQueryLogging(ctx context.Context, account, id string, dests []LoggingDestination, clientToken string) (*QueryLoggingConfiguration, error) {
	req := destinationsHash(dests)
	var out *QueryLoggingConfiguration
	_, err := s.update(ctx, account, id, func(ws *Workspace) error {
		if retry, err := s.retriedQueryLogging(ws, clientToken, qlCreate, req); err != nil {
			return err
		} else if retry && ws.QueryLogging != nil {
			out = ws.QueryLogging
			return errUnchanged
		}
		if ws.QueryLogging != nil {
			return queryLoggingExists(id)
		}
		now := s.now().UTC()
		ws.QueryLogging = &QueryLoggingConfiguration{Destinations: dests, Status: StatusActive, CreatedAt: now, ModifiedAt: now}
		ws.QueryLoggingTokens = s.recordToken(ws.QueryLoggingTokens, clientToken, qlCreate, req)
		out = ws.QueryLogging
		return nil
	})
	return out, err
}

// UpdateQueryLogging replaces the destinations of a workspace's query
// logging configuration, in force at once.
func (s *Store) UpdateQueryLogging(ctx context.Context, account, id string, dests []LoggingDestination, clientToken string) (*QueryLoggingConfiguration, error) {
	req := destinationsHash(dests)
	var out *QueryLoggingConfiguration
	_, err := s.update(ctx, account, id, func(ws *Workspace) error {
		if ws.QueryLogging == nil {
			return queryLoggingNotFound(id)
		}
		if retry, err := s.retriedQueryLogging(ws, clientToken, qlUpdate, req); err != nil {
			return err
		} else if retry {
			out = ws.QueryLogging
			return errUnchanged
		}
		cfg := *ws.QueryLogging
		cfg.Destinations = dests
		cfg.Status = StatusActive
		cfg.ModifiedAt = s.now().UTC()
		ws.QueryLogging = &cfg
		ws.QueryLoggingTokens = s.recordToken(ws.QueryLoggingTokens, clientToken, qlUpdate, req)
		out = ws.QueryLogging
		return nil
	})
	return out, err
}

// DeleteQueryLogging removes a workspace's query logging configuration;
// the retry of the delete that removed it succeeds.
func (s *Store) DeleteQueryLogging(ctx context.Context, account, id, clientToken string) error {
	_, err := s.update(ctx, account, id, func(ws *Workspace) error {
		if retry, err := s.retriedQueryLogging(ws, clientToken, qlDelete, ""); err != nil {
			return err
		} else if retry && ws.QueryLogging == nil {
			return errUnchanged
		}
		if ws.QueryLogging == nil {
			return queryLoggingNotFound(id)
		}
		ws.QueryLogging = nil
		ws.QueryLoggingTokens = s.recordToken(ws.QueryLoggingTokens, clientToken, qlDelete, "")
		return nil
	})
	return err
}

// DescribeQueryLogging returns the query logging configuration of a
// workspace owned by account.
func (s *Store) DescribeQueryLogging(ctx context.Context, account, id string) (*QueryLoggingConfiguration, error) {
	ws, err := s.Describe(ctx, account, id)
	if err != nil {
		return nil, err
	}
	if ws.QueryLogging == nil {
		return nil, queryLoggingNotFound(id)
	}
	return ws.QueryLogging, nil
}

// QueryLogging returns a workspace's query logging configuration (nil:
// none) from the status cache, for the data plane: a change made through
// another replica is seen within -controlplane.status-cache-ttl. The
// result is shared: callers must not change it.
func (s *Store) QueryLogging(ctx context.Context, id string) (*QueryLoggingConfiguration, error) {
	ws, err := s.cached(ctx, id)
	if err != nil {
		return nil, err
	}
	return ws.QueryLogging, nil
}
