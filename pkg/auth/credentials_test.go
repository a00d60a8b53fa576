package auth

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
)

func TestCredentialsFileIsValidated(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{"ok", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}], managed_policies: [AmazonPrometheusFullAccess]}]}]`, ""},
		{"bad account", `accounts: [{id: "1234", users: []}]`, "not 12 digits"},
		{"unknown field", `accounts: [{id: "111122223333", secrets: []}]`, "field secrets not found"},
		{"remote write only", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}], managed_policies: [AmazonPrometheusRemoteWriteAccess]}]}]`, ""},
		{"inline YAML policy", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}], policies: [{Version: "2012-10-17", Statement: [{Effect: Allow, Action: "aps:QueryMetrics", Resource: "*"}]}]}]}]`, ""},
		{"inline JSON policy", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}], policies: ['{"Statement": {"Effect": "Deny", "Action": "aps:*", "Resource": "*"}}']}]}]`, ""},
		{"no policy", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}]}]}]`, ""},
		{"unknown managed policy", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}], managed_policies: [AdministratorAccess]}]}]`, "unknown managed policy"},
		{"bad inline policy", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}], policies: [{Statement: [{Effect: Maybe, Action: "*", Resource: "*"}]}]}]}]`, "Effect must be Allow or Deny"},
		{"principal in identity policy", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}], policies: [{Statement: [{Effect: Allow, Principal: "*", Action: "*", Resource: "*"}]}]}]}]`, "cannot have a Principal"},
		{"unsupported operator", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}], policies: [{Statement: [{Effect: Allow, Action: "*", Resource: "*", Condition: {DateGreaterThan: {"aws:CurrentTime": "2020-01-01"}}}]}]}]}]`, "not supported"},
		{"duplicate key", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA, secret: s}, {id: AKIAEXAMPLEAAAAAA, secret: t}], managed_policies: [AmazonPrometheusFullAccess]}]}]`, "listed twice"},
		{"empty secret", `accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: AKIAEXAMPLEAAAAAA}], managed_policies: [AmazonPrometheusFullAccess]}]}]`, "and a secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := parseCredentials([]byte(tc.yaml))
			if tc.err == "" {
				require.NoError(t, err)
				id := keys["AKIAEXAMPLEAAAAAA"].id
				require.Equal(t, "111122223333", id.Account)
				require.Equal(t, "a", id.User)
				require.Equal(t, "AKIAEXAMPLEAAAAAA", id.AccessKeyID)
				return
			}
			require.ErrorContains(t, err, tc.err)
			require.NotContains(t, err.Error(), ": s}", "no secret in the message")
		})
	}
}

// TestCredentialsAreReloaded: a changed file takes effect without a
// restart; a broken one leaves the identities loaded before.
func TestCredentialsAreReloaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	write := func(key string) {
		require.NoError(t, os.WriteFile(path, []byte(`accounts: [{id: "111122223333", users: [{name: a, access_keys: [{id: `+key+`, secret: s}], managed_policies: [AmazonPrometheusFullAccess]}]}]`), 0o600))
	}
	write("AKIAEXAMPLEAAAAAA")
	k, err := LoadKeys(path, log.NewNopLogger())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Watch(ctx, 10*time.Millisecond)

	write("AKIAEXAMPLEBBBBBB")
	require.Eventually(t, func() bool { _, _, ok := k.Lookup("AKIAEXAMPLEBBBBBB"); return ok }, 5*time.Second, 10*time.Millisecond)
	_, _, ok := k.Lookup("AKIAEXAMPLEAAAAAA")
	require.False(t, ok, "a key removed from the file is revoked")

	require.NoError(t, os.WriteFile(path, []byte("accounts: [this is not yaml"), 0o600))
	time.Sleep(100 * time.Millisecond)
	_, _, ok = k.Lookup("AKIAEXAMPLEBBBBBB")
	require.True(t, ok, "a broken file leaves the identities loaded before")
}
