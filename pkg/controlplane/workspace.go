// Package controlplane keeps Vigil's AMP resources (for now: workspaces) as
// JSON documents in object storage and serves the AMP REST API over them.
package controlplane

import (
	"crypto/rand"
	"fmt"
	"time"
)

// Workspace statuses, as AMP names them.
const (
	StatusCreating       = "CREATING"
	StatusActive         = "ACTIVE"
	StatusUpdating       = "UPDATING"
	StatusDeleting       = "DELETING"
	StatusCreationFailed = "CREATION_FAILED"
)

// Workspace is the stored document of one workspace.
type Workspace struct {
	ID        string            `json:"workspaceId"`
	Account   string            `json:"account"`
	Alias     string            `json:"alias,omitempty"`
	ARN       string            `json:"arn"`
	Status    string            `json:"status"`
	CreatedAt time.Time         `json:"createdAt"`
	Tags      map[string]string `json:"tags,omitempty"`
	KMSKeyARN string            `json:"kmsKeyArn,omitempty"`
}

// newWorkspaceID returns "ws-" followed by a random (version 4) UUID, the
// shape of AMP's workspace IDs.
func newWorkspaceID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("ws-%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// workspaceARN returns the ARN AMP gives a workspace.
func workspaceARN(region, account, id string) string {
	return fmt.Sprintf("arn:aws:aps:%s:%s:workspace/%s", region, account, id)
}
