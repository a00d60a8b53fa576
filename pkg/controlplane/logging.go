package controlplane

import (
	"net/http"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// LoggingConfigurations is the kind of a workspace's logging configuration
// (AMP's vended logs): where the ruler's and the alertmanager's WARN and
// ERROR events of the workspace go. One per workspace, stored under
// ConfigurationName; its document is the log group ARN, which the
// operator maps to a sink (-vended-logs.sink).
var LoggingConfigurations = Kind{
	Name:         "logging",
	ResourceType: "LoggingConfiguration",
	NotFoundID:   apierror.IDLoggingConfigurationNotFound,
	ExistsID:     apierror.IDLoggingConfigurationExists,
}

// ConfigurationName is the name a workspace's one logging configuration
// is stored under.
const ConfigurationName = "configuration"

// loggingChecks check a logging configuration's document: AMP's log group
// ARN pattern.
var loggingChecks = Checks{Document: func(data []byte) (int, error) {
	if !logGroupARNRe.Match(data) {
		return 0, constraintError("logGroupArn", string(data),
			`Member must satisfy regular expression pattern: arn:aws[a-z0-9-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[A-Za-z0-9\.\-\_\#/]{1,512}\:\*`)
	}
	return 0, nil
}}

// loggingInput reads a create's or update's body.
func loggingInput(r *http.Request) (arn []byte, token string, err error) {
	var in struct {
		LogGroupARN *string `json:"logGroupArn"`
		ClientToken string  `json:"clientToken"`
	}
	if err := decode(r, &in); err != nil {
		return nil, "", err
	}
	if in.LogGroupARN == nil {
		return nil, "", constraintError("logGroupArn", "", "Member must not be null")
	}
	return []byte(*in.LogGroupARN), in.ClientToken, checkClientToken(in.ClientToken)
}

// logging is the workspace's logging configuration as a singleton.
var logging = singleton{kind: LoggingConfigurations, name: ConfigurationName, input: loggingInput,
	checks: func(string) Checks { return loggingChecks },
	describe: func(c *Resource) (string, map[string]any) {
		return "loggingConfiguration", map[string]any{"workspace": c.Workspace, "logGroupArn": string(c.Data)}
	}}

// CreateLoggingConfiguration handles POST /workspaces/{id}/logging: in
// force at once (the answer is AMP's CREATING, then it reads ACTIVE).
func (h *Handler) CreateLoggingConfiguration(w http.ResponseWriter, r *http.Request) {
	h.storeSingleton(w, r, logging, true)
}

// UpdateLoggingConfiguration handles PUT /workspaces/{id}/logging.
func (h *Handler) UpdateLoggingConfiguration(w http.ResponseWriter, r *http.Request) {
	h.storeSingleton(w, r, logging, false)
}

// DescribeLoggingConfiguration handles GET /workspaces/{id}/logging.
func (h *Handler) DescribeLoggingConfiguration(w http.ResponseWriter, r *http.Request) {
	h.describeSingleton(w, r, logging)
}

// DeleteLoggingConfiguration handles
// DELETE /workspaces/{id}/logging?clientToken=.
func (h *Handler) DeleteLoggingConfiguration(w http.ResponseWriter, r *http.Request) {
	h.deleteSingleton(w, r, logging)
}
