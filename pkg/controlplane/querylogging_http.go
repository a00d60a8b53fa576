package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// logGroupARNRe is AMP's LogGroupArn pattern, matched against the whole
// value: a CloudWatch Logs log group ARN ending in ":*".
var logGroupARNRe = regexp.MustCompile(`^arn:aws[a-z0-9-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[A-Za-z0-9\.\-\_\#/]{1,512}\:\*$`)

// destinationJSON is a LoggingDestination as a request carries it: every
// member a pointer, so that a missing one is told from a zero one.
type destinationJSON struct {
	CloudWatchLogs *struct {
		LogGroupARN *string `json:"logGroupArn"`
	} `json:"cloudWatchLogs"`
	Filters *struct {
		QSPThreshold *int64 `json:"qspThreshold"`
	} `json:"filters"`
}

// constraintError is a ValidationException in the words AWS services use
// for a value that breaks a constraint of the API's model.
func constraintError(field, value, constraint string) error {
	v := "null"
	if value != "" {
		if len(value) > 256 {
			value = value[:256] + "..."
		}
		v = "'" + value + "'"
	}
	return apierror.Invalid(field, "1 validation error detected: Value %s at '%s' failed to satisfy constraint: %s", v, field, constraint)
}

// parseDestinations validates the destinations of a create or update
// against AMP's model: exactly one, with a log group ARN and a
// non-negative qspThreshold.
func parseDestinations(in *[]destinationJSON) ([]LoggingDestination, error) {
	if in == nil {
		return nil, constraintError("destinations", "", "Member must not be null")
	}
	raw, _ := json.Marshal(*in)
	switch {
	case len(*in) < 1:
		return nil, constraintError("destinations", string(raw), "Member must have length greater than or equal to 1")
	case len(*in) > 1:
		return nil, constraintError("destinations", string(raw), "Member must have length less than or equal to 1")
	}
	out := make([]LoggingDestination, 0, len(*in))
	for i, d := range *in {
		at := fmt.Sprintf("destinations.%d.member.", i+1)
		if d.CloudWatchLogs == nil {
			return nil, constraintError(at+"cloudWatchLogs", "", "Member must not be null")
		}
		if d.Filters == nil {
			return nil, constraintError(at+"filters", "", "Member must not be null")
		}
		arn := d.CloudWatchLogs.LogGroupARN
		if arn == nil {
			return nil, constraintError(at+"cloudWatchLogs.logGroupArn", "", "Member must not be null")
		}
		if !logGroupARNRe.MatchString(*arn) {
			return nil, constraintError(at+"cloudWatchLogs.logGroupArn", *arn,
				`Member must satisfy regular expression pattern: arn:aws[a-z0-9-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[A-Za-z0-9\.\-\_\#/]{1,512}\:\*`)
		}
		qsp := d.Filters.QSPThreshold
		if qsp == nil {
			return nil, constraintError(at+"filters.qspThreshold", "", "Member must not be null")
		}
		if *qsp < 0 {
			return nil, constraintError(at+"filters.qspThreshold", fmt.Sprint(*qsp), "Member must have value greater than or equal to 0")
		}
		out = append(out, LoggingDestination{
			CloudWatchLogs: CloudWatchLogDestination{LogGroupARN: *arn},
			Filters:        LoggingFilter{QSPThreshold: *qsp},
		})
	}
	return out, nil
}

// queryLoggingInput reads the body of a create or update.
func queryLoggingInput(r *http.Request) ([]LoggingDestination, string, error) {
	var in struct {
		Destinations *[]destinationJSON `json:"destinations"`
		ClientToken  string             `json:"clientToken"`
	}
	if err := decode(r, &in); err != nil {
		return nil, "", err
	}
	if err := checkClientToken(in.ClientToken); err != nil {
		return nil, "", err
	}
	dests, err := parseDestinations(in.Destinations)
	return dests, in.ClientToken, err
}

type queryLoggingStatusJSON struct {
	Status statusJSON `json:"status"`
}

// CreateQueryLogging handles CreateQueryLoggingConfiguration:
// POST /workspaces/{id}/logging/query.
func (h *Handler) CreateQueryLogging(w http.ResponseWriter, r *http.Request) {
	h.putQueryLogging(w, r, h.store.CreateQueryLogging)
}

// UpdateQueryLogging handles UpdateQueryLoggingConfiguration:
// PUT /workspaces/{id}/logging/query.
func (h *Handler) UpdateQueryLogging(w http.ResponseWriter, r *http.Request) {
	h.putQueryLogging(w, r, h.store.UpdateQueryLogging)
}

// putQueryLogging reads a configuration's destinations and clientToken,
// stores them with put and answers 202 with the status.
func (h *Handler) putQueryLogging(w http.ResponseWriter, r *http.Request,
	put func(ctx context.Context, acct, id string, dests []LoggingDestination, token string) (*QueryLoggingConfiguration, error)) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	dests, token, err := queryLoggingInput(r)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	cfg, err := put(r.Context(), acct, r.PathValue("workspaceId"), dests, token)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, queryLoggingStatusJSON{statusJSON{StatusCode: cfg.Status}})
}

// DescribeQueryLogging handles DescribeQueryLoggingConfiguration:
// GET /workspaces/{id}/logging/query.
func (h *Handler) DescribeQueryLogging(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, false)
	if !ok {
		return
	}
	id := r.PathValue("workspaceId")
	cfg, err := h.store.DescribeQueryLogging(r.Context(), acct, id)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"queryLoggingConfiguration": struct {
		Status       statusJSON           `json:"status"`
		Workspace    string               `json:"workspace"`
		Destinations []LoggingDestination `json:"destinations"`
		CreatedAt    float64              `json:"createdAt"`
		ModifiedAt   float64              `json:"modifiedAt"`
	}{
		Status:       statusJSON{StatusCode: cfg.Status},
		Workspace:    id,
		Destinations: cfg.Destinations,
		CreatedAt:    float64(cfg.CreatedAt.UnixMilli()) / 1000,
		ModifiedAt:   float64(cfg.ModifiedAt.UnixMilli()) / 1000,
	}})
}

// DeleteQueryLogging handles DeleteQueryLoggingConfiguration:
// DELETE /workspaces/{id}/logging/query?clientToken=.
func (h *Handler) DeleteQueryLogging(w http.ResponseWriter, r *http.Request) {
	h.deleteWithToken(w, r, func(acct, token string) error {
		return h.store.DeleteQueryLogging(r.Context(), acct, r.PathValue("workspaceId"), token)
	})
}

// deleteWithToken serves a delete whose clientToken is in the query: 202
// once del, given the caller's account and the token, succeeded.
func (h *Handler) deleteWithToken(w http.ResponseWriter, r *http.Request, del func(acct, token string) error) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	token := r.URL.Query().Get("clientToken")
	if err := checkClientToken(token); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if err := del(acct, token); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
