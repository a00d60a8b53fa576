package auth

import (
	"fmt"
	"strings"
)

// ARN is a parsed AMP resource ARN:
// arn:aws:aps:<region>:<account>:<type>/<id>[/<name>].
type ARN struct {
	Region, Account string
	Type            string // "workspace"
	ID              string // the workspace ID
}

func (a ARN) String() string {
	return "arn:aws:aps:" + a.Region + ":" + a.Account + ":" + a.Type + "/" + a.ID
}

// WorkspaceARN is the ARN of a workspace.
func WorkspaceARN(region, account, id string) string {
	return ARN{Region: region, Account: account, Type: "workspace", ID: id}.String()
}

// ParseARN parses the ARN of an AMP resource this version knows
// (workspaces).
func ParseARN(s string) (ARN, error) {
	if len(s) > 2048 {
		return ARN{}, fmt.Errorf("resource ARN is longer than 2048 characters")
	}
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] != "aws" || parts[2] != "aps" || parts[3] == "" {
		return ARN{}, fmt.Errorf("%q is not an Amazon Managed Service for Prometheus resource ARN", s)
	}
	if !accountIDRe.MatchString(parts[4]) {
		return ARN{}, fmt.Errorf("resource ARN %q does not name a 12-digit account", s)
	}
	typ, id, ok := strings.Cut(parts[5], "/")
	if !ok || typ != "workspace" || id == "" || strings.ContainsAny(id, "/*?") {
		return ARN{}, fmt.Errorf("resource ARN %q does not name a workspace", s)
	}
	return ARN{Region: parts[3], Account: parts[4], Type: typ, ID: id}, nil
}

// ValidAccountID tells whether s is a 12-digit account ID.
func ValidAccountID(s string) bool { return accountIDRe.MatchString(s) }
