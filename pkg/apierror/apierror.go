// Package apierror defines the errors Vigil shows its users: a cause that
// fixes the HTTP and gRPC status, a stable ID with a runbook entry in
// docs/errors.md, and a message in AMP's or Prometheus's wording.
package apierror

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Cause classifies an error; it alone decides the status code a user sees.
type Cause int

// The causes. Their order is not significant.
const (
	// Internal is a fault of the service; clients may retry.
	Internal Cause = iota
	// BadData is malformed or invalid input; retrying the same request fails again.
	BadData
	// NotFound is a missing resource, such as a workspace that does not exist.
	NotFound
	// Conflict is a request that clashes with the resource's current state.
	Conflict
	// TooLarge is a request body over the configured size limit.
	TooLarge
	// UnsupportedMediaType is a request whose content type or encoding is not accepted.
	UnsupportedMediaType
	// TooManyRequests is a request rejected by a rate limit.
	TooManyRequests
	// Unavailable is a request that could not reach enough healthy replicas.
	Unavailable
	// QuotaExceeded is a request that would take an account over a resource quota.
	QuotaExceeded
	// LimitExceeded is a query that would read more than a per-query limit
	// allows; the same query fails again until the limit is raised.
	LimitExceeded
	// Forbidden is a request whose signature or identity cannot be
	// verified, or that the caller's policies do not allow.
	Forbidden
)

// Stable error IDs. Each has a runbook entry in docs/errors.md.
const (
	IDMissingMetricName      = "missing-metric-name"
	IDInvalidMetricName      = "metric-name-invalid"
	IDInvalidLabel           = "label-invalid"
	IDDuplicateLabelNames    = "duplicate-label-names"
	IDTooManyLabels          = "max-label-names-per-series"
	IDLabelNameTooLong       = "label-name-too-long"
	IDLabelValueTooLong      = "label-value-too-long"
	IDLabelsTooLarge         = "labels-size-too-large"
	IDRequestTooLarge        = "request-too-large"
	IDUnsupportedContentType = "unsupported-content-type"
	IDInvalidRequestBody     = "invalid-request-body"
	IDWorkspaceNotFound      = "workspace-not-found"
	IDWorkspaceNotActive     = "workspace-not-active"
	IDMissingTenant          = "missing-tenant"
	IDSampleOutOfOrder       = "sample-out-of-order"
	IDSampleDuplicate        = "sample-duplicate-timestamp"
	IDSampleOutOfBounds      = "sample-out-of-bounds"
	IDInvalidHistogram       = "invalid-native-histogram"
	IDIngesterUnavailable    = "ingester-unavailable"
	IDValidation             = "validation"
	IDWorkspaceQuota         = "workspace-quota"
	IDInvalidQuery           = "invalid-query"
	IDTooFarInFuture         = "too-far-in-future"
	IDSampleTooOld           = "sample-too-old"
	IDRateLimited            = "ingestion-rate-limited"
	IDMetadataTooLong        = "metadata-too-long"
	IDTooManyMetadata        = "too-many-metadata-per-metric"

	IDDistributorMaxInflightRequests = "distributor-max-inflight-push-requests"
	IDDistributorMaxInflightBytes    = "distributor-max-inflight-push-requests-bytes"
	IDIngesterMaxInflightRequests    = "ingester-max-inflight-push-requests"
	IDIngesterMaxSeries              = "ingester-max-series"
	IDTSDBUnavailable                = "tsdb-unavailable"
	IDWALSync                        = "wal-sync-failed"
	IDMaxSeriesPerQuery              = "max-series-per-query"
	IDMaxChunksPerQuery              = "max-chunks-per-query"
	IDMaxQueryLength                 = "max-query-length"
	IDQueryExpressionTooLarge        = "query-expression-too-large"
	IDQueryExpressionTooDeep         = "query-expression-too-deep"
	IDQueryBlocked                   = "query-blocked"
	IDQueryRegexpTooLarge            = "query-regexp-too-large"
	IDQuerySamplesProcessed          = "query-samples-processed"
	IDAnswerTooLarge                 = "answer-too-large"
	IDWorkspaceQueryConcurrency      = "workspace-query-concurrency"
	IDWorkspaceRulesAPIConcurrency   = "workspace-rules-api-concurrency"
	IDMaxSamplesPerQuery             = "max-samples-per-query"
	IDMaxChunkBytesPerQuery          = "max-chunk-bytes-per-query"
	IDClientTokenReused              = "client-token-reused"
	IDControlPlaneUnavailable        = "controlplane-unavailable"
	IDStoreConsistency               = "store-consistency-check-failed"
	IDStorageUnavailable             = "object-storage-unavailable"
	IDIncompleteSignature            = "incomplete-signature"
	IDUnknownAccessKey               = "unknown-access-key"
	IDSignatureMismatch              = "signature-mismatch"
	IDSignatureExpired               = "signature-expired"
	IDAccessDenied                   = "access-denied"
	IDLabelSetSeriesLimit            = "per-labelset-series-limit"
	IDPolicyNotFound                 = "resource-policy-not-found"
	IDRevisionMismatch               = "revision-id-mismatch"
	IDControlPlaneThrottled          = "control-plane-throttled"
	IDInternal                       = "internal"
	IDMalformedQueryString           = "malformed-query-string"
	IDInflightBodyBytes              = "inflight-request-body-bytes"
	IDTooManyHAClusters              = "too-many-ha-clusters"
	IDHATrackerUnavailable           = "ha-tracker-unavailable"
	IDPerUserSeriesLimit             = "per-user-series-limit"
	IDPerMetricSeriesLimit           = "per-metric-series-limit"
	IDIngesterMemoryLimit            = "ingester-memory-limit"
	IDQueryLoggingExists             = "query-logging-configuration-exists"
	IDQueryLoggingNotFound           = "query-logging-configuration-not-found"
	IDRuleGroupsNamespaceNotFound    = "rule-groups-namespace-not-found"
	IDRuleGroupsNamespaceExists      = "rule-groups-namespace-exists"
	IDRulesQuota                     = "rules-per-workspace-quota"
	IDRuleGroupsNamespacesQuota      = "rule-groups-namespaces-per-workspace-quota"
	IDTooManyOutstandingRequests     = "too-many-outstanding-requests"
	IDRulerUnavailable               = "ruler-unavailable"
	IDAlertManagerDefinitionNotFound = "alert-manager-definition-not-found"
	IDAlertManagerDefinitionExists   = "alert-manager-definition-exists"
	IDLoggingConfigurationNotFound   = "logging-configuration-not-found"
	IDAlertmanagerUnavailable        = "alertmanager-unavailable"
	IDLoggingConfigurationExists     = "logging-configuration-exists"
)

// Error is an error with a cause and a stable ID.
type Error struct {
	Cause Cause
	ID    string
	Msg   string
	// Field names the request field a BadData error is about (AMP's
	// ValidationException fieldList).
	Field string
	// ResourceID and ResourceType name the resource a NotFound or
	// Conflict error is about, as AMP's exceptions do.
	ResourceID, ResourceType string
}

// About returns e naming the resource it is about.
func (e *Error) About(resourceType, id string) *Error {
	e.ResourceType, e.ResourceID = resourceType, id
	return e
}

// Error returns the message followed by the ID users can look up.
func (e *Error) Error() string {
	if e.ID == "" {
		return e.Msg
	}
	return fmt.Sprintf("%s (err-vigil-%s)", e.Msg, e.ID)
}

// Invalid returns a BadData error about one request field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Cause: BadData, ID: IDValidation, Msg: fmt.Sprintf(format, args...), Field: field}
}

// New returns an Error with a formatted message.
func New(cause Cause, id, format string, args ...any) *Error {
	return &Error{Cause: cause, ID: id, Msg: fmt.Sprintf(format, args...)}
}

// CauseOf returns the cause of err (see From): Internal when it carries none.
func CauseOf(err error) Cause { return From(err).Cause }

// HTTPStatus is the one mapping from cause to HTTP status.
func HTTPStatus(c Cause) int {
	switch c {
	case BadData:
		return http.StatusBadRequest
	case NotFound:
		return http.StatusNotFound
	case Conflict:
		return http.StatusConflict
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case UnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case TooManyRequests:
		return http.StatusTooManyRequests
	case Unavailable:
		return http.StatusServiceUnavailable
	case QuotaExceeded:
		return http.StatusPaymentRequired // as AMP's ServiceQuotaExceededException
	case LimitExceeded:
		return http.StatusUnprocessableEntity // as Prometheus answers a query it cannot execute
	case Forbidden:
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// GRPCCode is the one mapping from cause to gRPC status code.
func GRPCCode(c Cause) codes.Code {
	switch c {
	case BadData, TooLarge, UnsupportedMediaType:
		return codes.InvalidArgument
	case NotFound:
		return codes.NotFound
	case Conflict:
		return codes.AlreadyExists
	case TooManyRequests, QuotaExceeded, LimitExceeded:
		return codes.ResourceExhausted
	case Unavailable:
		return codes.Unavailable
	case Forbidden:
		return codes.PermissionDenied
	default:
		return codes.Internal
	}
}

// AWSType is the AMP exception name (sent in x-amzn-ErrorType) for a cause,
// used by the control-plane API so that the AWS SDKs decode the error.
func AWSType(c Cause) string {
	switch c {
	case BadData, TooLarge, UnsupportedMediaType, LimitExceeded:
		return "ValidationException"
	case NotFound:
		return "ResourceNotFoundException"
	case Conflict:
		return "ConflictException"
	case TooManyRequests:
		return "ThrottlingException"
	case QuotaExceeded:
		return "ServiceQuotaExceededException"
	case Forbidden:
		return "AccessDeniedException"
	default:
		return "InternalServerException"
	}
}
