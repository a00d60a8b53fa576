package apierror

import (
	"encoding/json"
	"net/http"
)

// WriteAWS writes err the way AMP's REST-JSON API does: the exception name in
// the x-amzn-ErrorType header and {"message": ...} in the body, so that the
// AWS SDKs and CLI decode it into the matching exception type.
func WriteAWS(w http.ResponseWriter, err error) {
	e := From(err)
	typ := AWSType(e.Cause)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-ErrorType", typ)
	body := map[string]any{"message": err.Error()}
	switch typ {
	case "ValidationException":
		body["reason"] = "OTHER"
		if e.Field != "" {
			body["reason"] = "FIELD_VALIDATION_FAILED"
			body["fieldList"] = []map[string]string{{"name": e.Field, "message": e.Msg}}
		}
	case "ThrottlingException":
		body["serviceCode"] = "aps"
		w.Header().Set("Retry-After", "1")
	case "ServiceQuotaExceededException":
		body["serviceCode"], body["quotaCode"] = "aps", e.ID
	}
	if e.ResourceID != "" {
		body["resourceId"], body["resourceType"] = e.ResourceID, e.ResourceType
	}
	w.WriteHeader(HTTPStatus(e.Cause))
	_ = json.NewEncoder(w).Encode(body)
}

// prometheusErrorType is the errorType of Prometheus's JSON envelope for a cause.
func prometheusErrorType(c Cause) string {
	switch c {
	case BadData, TooLarge, UnsupportedMediaType:
		return "bad_data"
	case NotFound:
		return "not_found"
	case TooManyRequests:
		return "too_many_requests"
	case Forbidden:
		return "forbidden"
	case Unavailable:
		return "unavailable"
	case LimitExceeded:
		return "execution"
	default:
		return "internal"
	}
}

// WritePrometheus writes err in Prometheus's JSON error envelope, as the query
// API does.
func WritePrometheus(w http.ResponseWriter, err error) {
	cause := From(err).Cause
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(HTTPStatus(cause))
	_ = json.NewEncoder(w).Encode(map[string]string{
		"status":    "error",
		"errorType": prometheusErrorType(cause),
		"error":     err.Error(),
	})
}

// WriteText writes err as plain text, as Prometheus's remote-write receiver
// does, so that senders log the reason.
func WriteText(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(StatusOf(err))
	_, _ = w.Write([]byte(Message(err) + "\n"))
}
