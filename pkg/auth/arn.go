package auth

import (
	"fmt"
	"strings"
)

// ARN is a parsed AMP resource ARN:
// arn:aws:aps:<region>:<account>:<type>/<id>[/<name>].
type ARN struct {
	Region, Account string
	Type            string // "workspace", "rulegroupsnamespace"
	ID              string // the workspace ID
	Name            string // of a resource of the workspace ("" for the workspace)
}

// The resource types of ARNs.
const (
	TypeWorkspace           = "workspace"
	TypeRuleGroupsNamespace = "rulegroupsnamespace"
)

func (a ARN) String() string {
	s := "arn:aws:aps:" + a.Region + ":" + a.Account + ":" + a.Type + "/" + a.ID
	if a.Name != "" {
		s += "/" + a.Name
	}
	return s
}

// Workspace is the ARN of the workspace a resource belongs to (a itself
// for a workspace).
func (a ARN) Workspace() ARN {
	return ARN{Region: a.Region, Account: a.Account, Type: TypeWorkspace, ID: a.ID}
}

// WorkspaceARN is the ARN of a workspace.
func WorkspaceARN(region, account, id string) string {
	return ARN{Region: region, Account: account, Type: TypeWorkspace, ID: id}.String()
}

// ParseARN parses the ARN of an AMP resource this version knows:
// workspaces and their rule groups namespaces.
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
	typ, rest, ok := strings.Cut(parts[5], "/")
	switch {
	case ok && typ == TypeWorkspace && rest != "" && !strings.ContainsAny(rest, "/*?"):
		return ARN{Region: parts[3], Account: parts[4], Type: typ, ID: rest}, nil
	case ok && typ == TypeRuleGroupsNamespace:
		id, name, ok := strings.Cut(rest, "/")
		if ok && id != "" && name != "" && !strings.ContainsAny(id, "*?") && !strings.ContainsAny(name, "/*?") {
			return ARN{Region: parts[3], Account: parts[4], Type: typ, ID: id, Name: name}, nil
		}
	}
	return ARN{}, fmt.Errorf("resource ARN %q does not name a workspace or a rule groups namespace", s)
}

// ValidAccountID tells whether s is a 12-digit account ID.
func ValidAccountID(s string) bool { return accountIDRe.MatchString(s) }
