package vigil

import (
	"context"
	"fmt"
	"net"

	"github.com/vigil-metrics/vigil/pkg/controlplane"
)

// DefaultWorkspaceAlias is the alias of the workspace a monolithic Vigil
// creates at start-up, so that a newcomer can write and query at once.
const DefaultWorkspaceAlias = "default"

// EnsureDefaultWorkspace returns the anonymous account's workspace aliased
// "default", creating it when missing.
func (t *Vigil) EnsureDefaultWorkspace(ctx context.Context) (*controlplane.Workspace, error) {
	if t.Workspaces == nil {
		return nil, fmt.Errorf("this process runs no control plane")
	}
	account := t.Cfg.Auth.AnonymousAccount
	existing, err := t.Workspaces.List(ctx, account, DefaultWorkspaceAlias)
	if err != nil {
		return nil, err
	}
	for _, ws := range existing {
		if ws.Alias == DefaultWorkspaceAlias && ws.Status == controlplane.StatusActive {
			return ws, nil
		}
	}
	return t.Workspaces.Create(ctx, account, controlplane.CreateInput{Alias: DefaultWorkspaceAlias})
}

// BaseURL is the URL clients on this machine reach the public HTTP server at.
func (t *Vigil) BaseURL() string { return localURL(t.HTTPAddr()) }

// localURL is the URL a client on this machine reaches a listener at.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// IsMonolithic tells whether this process runs every module.
func (t *Vigil) IsMonolithic() bool {
	return len(t.Cfg.Target) == 1 && t.Cfg.Target[0] == All
}
