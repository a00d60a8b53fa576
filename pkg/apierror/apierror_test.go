package apierror

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
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
