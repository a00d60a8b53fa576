package apierror

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errorDomain marks the ErrorInfo details Vigil puts in gRPC statuses.
const errorDomain = "vigil.metrics"

var causeNames = map[Cause]string{
	Internal:             "internal",
	BadData:              "bad_data",
	NotFound:             "not_found",
	Conflict:             "conflict",
	TooLarge:             "too_large",
	UnsupportedMediaType: "unsupported_media_type",
	TooManyRequests:      "too_many_requests",
	Unavailable:          "unavailable",
	QuotaExceeded:        "quota_exceeded",
	LimitExceeded:        "limit_exceeded",
}

// String names the cause; the name travels between processes.
func (c Cause) String() string { return causeNames[c] }

func causeNamed(name string) (Cause, bool) {
	for c, n := range causeNames {
		if n == name {
			return c, true
		}
	}
	return Internal, false
}

// ToGRPC returns err as the gRPC status a server answers with: the code of
// its cause, and the cause, ID and message in an ErrorInfo detail, so that
// the calling process recovers the very Error with From.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		var e *Error
		if !errors.As(err, &e) {
			return err // already a status, from a call this server made
		}
	}
	e := From(err)
	st := status.New(GRPCCode(e.Cause), err.Error())
	withDetails, detailErr := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   e.ID,
		Domain:   errorDomain,
		Metadata: map[string]string{"cause": e.Cause.String(), "message": e.Msg},
	})
	if detailErr == nil {
		st = withDetails
	}
	return st.Err()
}

// From returns the Error err is or carries: a Vigil error (also one another
// process sent in a gRPC status), or a cause classified from a gRPC code or
// a context error. Anything else is Internal with err's text.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if s, ok := status.FromError(err); ok {
		for _, d := range s.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errorDomain {
				if c, ok := causeNamed(info.Metadata["cause"]); ok {
					return &Error{Cause: c, ID: info.Reason, Msg: info.Metadata["message"]}
				}
			}
		}
		// A transport failure, or a status without Vigil's detail.
		return &Error{Cause: causeOfCode(s.Code()), Msg: s.Message()}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &Error{Cause: Unavailable, Msg: err.Error()}
	}
	return &Error{Cause: Internal, Msg: err.Error()}
}

func causeOfCode(c codes.Code) Cause {
	switch c {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return BadData
	case codes.NotFound:
		return NotFound
	case codes.AlreadyExists, codes.Aborted:
		return Conflict
	case codes.PermissionDenied, codes.Unauthenticated:
		return Forbidden
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted:
		return Unavailable
	default:
		return Internal
	}
}

// StatusOf is the HTTP status err is answered with.
func StatusOf(err error) int { return HTTPStatus(From(err).Cause) }

// IsClientError tells whether err is the caller's fault (a 4xx status):
// retrying the same request fails again.
func IsClientError(err error) bool { return StatusOf(err)/100 == 4 }

// Message is the text a user is shown for err: a Vigil error's message and
// ID, also when another process sent it.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return err.Error() // keeps the context the callers wrapped around it
	}
	return From(err).Error()
}
