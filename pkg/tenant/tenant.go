// Package tenant carries the workspace ID (the tenant) through request
// contexts and gRPC metadata. It wraps dskit's user package so that the rest
// of Vigil never handles the org-ID header directly.
package tenant

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/grafana/dskit/user"
)

// ErrNoTenant is returned when a context carries no workspace ID.
var ErrNoTenant = errors.New("no workspace id in request context")

// validID is AMP's WorkspaceId pattern. It also keeps IDs safe to use as
// file and object names: no separators, no leading dot.
var validID = regexp.MustCompile(`^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$`)

// ValidID returns an error unless id is a well-formed workspace ID.
func ValidID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("invalid workspace id %q", id)
	}
	return nil
}

// WithID returns a copy of ctx that carries the workspace id.
func WithID(ctx context.Context, id string) context.Context {
	return user.InjectOrgID(ctx, id)
}

// ID returns the workspace id carried by ctx.
func ID(ctx context.Context) (string, error) {
	id, err := user.ExtractOrgID(ctx)
	if err != nil || id == "" {
		return "", ErrNoTenant
	}
	return id, nil
}

// OutgoingContext copies the workspace id in ctx into outgoing gRPC metadata.
func OutgoingContext(ctx context.Context) (context.Context, error) {
	return user.InjectIntoGRPCRequest(ctx)
}

// FromIncomingContext reads the workspace id from incoming gRPC metadata and
// returns a context that carries it.
func FromIncomingContext(ctx context.Context) (string, context.Context, error) {
	id, ctx, err := user.ExtractFromGRPCRequest(ctx)
	if err != nil || id == "" {
		return "", ctx, ErrNoTenant
	}
	return id, ctx, nil
}

type accountKey struct{}

// WithAccount returns a copy of ctx that carries the caller's account ID, the
// owner of the workspaces it creates and lists.
func WithAccount(ctx context.Context, account string) context.Context {
	return context.WithValue(ctx, accountKey{}, account)
}

// Account returns the caller's account ID carried by ctx.
func Account(ctx context.Context) (string, bool) {
	a, ok := ctx.Value(accountKey{}).(string)
	return a, ok && a != ""
}
