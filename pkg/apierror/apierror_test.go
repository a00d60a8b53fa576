package apierror

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestMappings(t *testing.T) {
	for _, tc := range []struct {
		cause Cause
		http  int
		grpc  codes.Code
		aws   string
	}{
		{BadData, http.StatusBadRequest, codes.InvalidArgument, "ValidationException"},
		{NotFound, http.StatusNotFound, codes.NotFound, "ResourceNotFoundException"},
		{Conflict, http.StatusConflict, codes.AlreadyExists, "ConflictException"},
		{TooLarge, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "ValidationException"},
		{UnsupportedMediaType, http.StatusUnsupportedMediaType, codes.InvalidArgument, "ValidationException"},
		{TooManyRequests, http.StatusTooManyRequests, codes.ResourceExhausted, "ThrottlingException"},
		{Unavailable, http.StatusServiceUnavailable, codes.Unavailable, "InternalServerException"},
		{QuotaExceeded, http.StatusPaymentRequired, codes.ResourceExhausted, "ServiceQuotaExceededException"},
		{LimitExceeded, http.StatusUnprocessableEntity, codes.ResourceExhausted, "ValidationException"},
		{Internal, http.StatusInternalServerError, codes.Internal, "InternalServerException"},
	} {
		require.Equal(t, tc.http, HTTPStatus(tc.cause))
		require.Equal(t, tc.grpc, GRPCCode(tc.cause))
		require.Equal(t, tc.aws, AWSType(tc.cause))
	}
}

func TestCauseOfWrapped(t *testing.T) {
	err := fmt.Errorf("push: %w", New(NotFound, IDWorkspaceNotFound, "workspace %s does not exist", "ws-1"))
	require.Equal(t, NotFound, CauseOf(err))
	require.Contains(t, err.Error(), "err-vigil-workspace-not-found")
	require.Equal(t, Internal, CauseOf(fmt.Errorf("plain")))
}

// overTheWire sends err through a gRPC status as a server answers and a
// client decodes it: marshalled and unmarshalled.
func overTheWire(t *testing.T, err error) error {
	t.Helper()
	raw, mErr := proto.Marshal(status.Convert(err).Proto())
	require.NoError(t, mErr)
	var pb spb.Status
	require.NoError(t, proto.Unmarshal(raw, &pb))
	return status.FromProto(&pb).Err()
}

func TestErrorSurvivesGRPC(t *testing.T) {
	for c := range causeNames {
		orig := fmt.Errorf("push: %w", New(c, IDSampleOutOfOrder, "sample rejected"))
		got := From(overTheWire(t, ToGRPC(orig)))
		require.Equal(t, c, got.Cause, c.String())
		require.Equal(t, IDSampleOutOfOrder, got.ID)
		require.Equal(t, "sample rejected", got.Msg)
		require.Equal(t, HTTPStatus(c), StatusOf(overTheWire(t, ToGRPC(orig))))
	}
}

func TestFromClassifiesForeignErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{status.Error(codes.Unavailable, "connection refused"), http.StatusServiceUnavailable},
		{status.Error(codes.DeadlineExceeded, "slow"), http.StatusServiceUnavailable},
		{status.Error(codes.InvalidArgument, "bad"), http.StatusBadRequest},
		{context.DeadlineExceeded, http.StatusServiceUnavailable},
		{fmt.Errorf("wrapped: %w", context.Canceled), http.StatusServiceUnavailable},
		{fmt.Errorf("boom"), http.StatusInternalServerError},
		{ToGRPC(fmt.Errorf("disk full")), http.StatusInternalServerError},
	} {
		require.Equal(t, tc.want, StatusOf(tc.err), tc.err.Error())
	}
	require.True(t, IsClientError(ToGRPC(New(BadData, IDInvalidLabel, "x"))))
	require.False(t, IsClientError(status.Error(codes.Unavailable, "x")))
	require.Equal(t, "x (err-vigil-label-invalid)", Message(overTheWire(t, ToGRPC(New(BadData, IDInvalidLabel, "x")))))
}
