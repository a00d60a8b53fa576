package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"gopkg.in/yaml.v3"
)

// CredentialsFile is the YAML shape of -auth.credentials-file.
type CredentialsFile struct {
	Accounts []AccountEntry `yaml:"accounts"`
}

// AccountEntry is one account and its users.
type AccountEntry struct {
	ID    string      `yaml:"id"`
	Users []UserEntry `yaml:"users"`
}

// UserEntry is one user, its access keys and its policies.
type UserEntry struct {
	Name            string           `yaml:"name"`
	AccessKeys      []AccessKeyEntry `yaml:"access_keys"`
	ManagedPolicies []string         `yaml:"managed_policies"`
	Policies        []yaml.Node      `yaml:"policies"`
}

// AccessKeyEntry is one access key.
type AccessKeyEntry struct {
	ID     string `yaml:"id"`
	Secret string `yaml:"secret"`
}

var (
	accountIDRe = regexp.MustCompile(`^[0-9]{12}$`)
	accessKeyRe = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
)

type keyEntry struct {
	secret string
	id     Identity
}

// parseCredentials validates a credentials file and indexes its keys.
func parseCredentials(b []byte) (map[string]keyEntry, error) {
	var f CredentialsFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse credentials: %w", err)
	}
	keys := map[string]keyEntry{}
	for _, a := range f.Accounts {
		if !accountIDRe.MatchString(a.ID) {
			return nil, fmt.Errorf("account id %q is not 12 digits", a.ID)
		}
		for _, u := range a.Users {
			if u.Name == "" {
				return nil, fmt.Errorf("account %s: a user has no name", a.ID)
			}
			policies, err := userPolicies(u)
			if err != nil {
				return nil, fmt.Errorf("account %s, user %s: %w", a.ID, u.Name, err)
			}
			for _, k := range u.AccessKeys {
				if !accessKeyRe.MatchString(k.ID) || k.Secret == "" {
					return nil, fmt.Errorf("account %s, user %s: access keys need an ID of 16 to 128 upper-case letters and digits, and a secret", a.ID, u.Name)
				}
				if _, dup := keys[k.ID]; dup {
					return nil, fmt.Errorf("access key %s is listed twice", k.ID)
				}
				keys[k.ID] = keyEntry{secret: k.Secret, id: Identity{Account: a.ID, User: u.Name, AccessKeyID: k.ID, Policies: policies}}
			}
		}
	}
	return keys, nil
}

// userPolicies compiles a user's managed and inline policies. An inline
// policy is written in YAML or JSON in the file, or as a string holding the
// JSON document, in IAM's shape either way.
func userPolicies(u UserEntry) ([]*Policy, error) {
	var out []*Policy
	for _, name := range u.ManagedPolicies {
		p, err := ManagedPolicy(name)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	for i, node := range u.Policies {
		var doc []byte
		if node.Kind == yaml.ScalarNode {
			doc = []byte(node.Value)
		} else {
			var v any
			if err := node.Decode(&v); err != nil {
				return nil, fmt.Errorf("inline policy %d: %w", i, err)
			}
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("inline policy %d: %w", i, err)
			}
			doc = b
		}
		p, err := ParsePolicy(doc, false)
		if err != nil {
			return nil, fmt.Errorf("inline policy %d: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// FileKeys are the identities of a credentials file, read again when it
// changes. Secrets are never logged.
type FileKeys struct {
	path   string
	logger log.Logger

	mu      sync.RWMutex
	keys    map[string]keyEntry
	modTime time.Time
	size    int64
}

// LoadKeys reads the credentials file at path.
func LoadKeys(path string, logger log.Logger) (*FileKeys, error) {
	k := &FileKeys{path: path, logger: logger}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Lookup implements Keys.
func (k *FileKeys) Lookup(id string) (string, Identity, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	e, ok := k.keys[id]
	return e.secret, e.id, ok
}

func (k *FileKeys) reload() error {
	fi, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	k.mu.RLock()
	same := fi.ModTime().Equal(k.modTime) && fi.Size() == k.size && k.keys != nil
	k.mu.RUnlock()
	if same {
		return nil
	}
	b, err := os.ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	keys, err := parseCredentials(b)
	if err != nil {
		return fmt.Errorf("credentials file %s: %w", k.path, err)
	}
	k.mu.Lock()
	k.keys, k.modTime, k.size = keys, fi.ModTime(), fi.Size()
	k.mu.Unlock()
	level.Info(k.logger).Log("msg", "loaded credentials", "file", k.path, "access_keys", len(keys))
	return nil
}

// Watch reads the file again every period until ctx ends; a file that no
// longer parses is logged and the identities loaded before stay.
func (k *FileKeys) Watch(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.reload(); err != nil {
				level.Warn(k.logger).Log("msg", "credentials file not reloaded; the identities loaded before stay", "err", err)
			}
		}
	}
}
