package vigil

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
)

// TestHelp compares the flag reference with the checked-in copy, so that
// every flag change is seen in review. Regenerate with `make reference-help`.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := LoadConfig([]string{"-help"}, &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	want, err := os.ReadFile("../../cmd/vigil/help.txt")
	require.NoError(t, err)
	require.Equal(t, string(want), out.String(), "flags changed: run `make reference-help` and review cmd/vigil/help.txt")
}

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
target: ingester
data_dir: ${VIGIL_TEST_DIR}
ingester:
  ring:
    replication_factor: 3
    heartbeat_period: 2s
distributor:
  max_request_size_bytes: 1234
`), 0o644))
	t.Setenv("VIGIL_TEST_DIR", "/from/env")

	cfg, err := LoadConfig([]string{"-config.file", file, "-config.expand-env", "-distributor.max-request-size-bytes=99"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, []string{"ingester"}, []string(cfg.Target))
	require.Equal(t, "/from/env", cfg.DataDir)
	require.Equal(t, 3, cfg.Ingester.Ring.ReplicationFactor)
	require.Equal(t, 2*time.Second, cfg.Ingester.Ring.HeartbeatPeriod)
	require.Equal(t, 99, cfg.Distributor.MaxRequestSizeBytes, "flags override the file")
	require.Equal(t, 9009, cfg.Server.HTTPListenPort, "defaults fill what neither sets")

	// Without -config.expand-env the reference stays literal.
	cfg, err = LoadConfig([]string{"-config.file=" + file}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "${VIGIL_TEST_DIR}", cfg.DataDir)

	// Unknown keys are errors, not silently ignored.
	require.NoError(t, os.WriteFile(file, []byte("ingester:\n  no_such_key: 1\n"), 0o644))
	_, err = LoadConfig([]string{"-config.file=" + file}, &bytes.Buffer{})
	require.ErrorContains(t, err, "no_such_key")
}

func TestUnknownTarget(t *testing.T) {
	cfg, err := LoadConfig([]string{"-target=scraper"}, &bytes.Buffer{})
	require.NoError(t, err)
	_, err = New(*cfg, nil, nil)
	require.ErrorContains(t, err, `unknown target "scraper"`)
}

func TestConfigEndpointMasksSecrets(t *testing.T) {
	cfg, err := LoadConfig([]string{"-storage.s3.secret-access-key=hunter2", "-storage.s3.access-key-id=AKID"}, &bytes.Buffer{})
	require.NoError(t, err)
	v := &Vigil{Cfg: *cfg}
	rec := httptest.NewRecorder()
	v.configHandler(rec, httptest.NewRequest(http.MethodGet, "/config", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.NotContains(t, rec.Body.String(), "hunter2")
	require.Contains(t, rec.Body.String(), "secret_access_key: '********'")
	require.Contains(t, rec.Body.String(), "access_key_id: AKID")
}

func TestAuthNoneStaysOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, ""}, // the default listens on 127.0.0.1
		{[]string{"-server.http-listen-address=::1"}, ""},
		{[]string{"-server.http-listen-address=localhost"}, ""},
		{[]string{"-server.http-listen-address="}, "listens on loopback only"},
		{[]string{"-server.http-listen-address=0.0.0.0"}, "listens on loopback only"},
		{[]string{"-server.http-listen-address=10.1.2.3"}, "listens on loopback only"},
		{[]string{"-server.grpc-listen-address=0.0.0.0"}, "-server.grpc-listen-address"},
		{[]string{"-memberlist.bind-addr=0.0.0.0"}, "-memberlist.bind-addr"},
		{[]string{"-server.http-listen-address=[::1]"}, ""},
		{[]string{"-server.http-listen-address=0.0.0.0", "-server.grpc-listen-address=0.0.0.0", "-memberlist.bind-addr=0.0.0.0", "-auth.none-allow-non-loopback"}, ""},
		{[]string{"-server.http-listen-address=0.0.0.0", "-auth.mode=sigv4", "-auth.credentials-file=/etc/creds.yaml"}, ""},
	} {
		cfg, err := LoadConfig(tc.args, &bytes.Buffer{})
		require.NoError(t, err)
		err = cfg.Validate()
		if tc.err == "" {
			require.NoError(t, err, tc.args)
		} else {
			require.ErrorContains(t, err, tc.err, tc.args)
		}
	}
}

func TestLoopbackClusterWarning(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{nil, false}, // the monolith
		{[]string{"-target=ingester"}, true},
		{[]string{"-target=ingester", "-ingester.ring.instance-addr=127.0.0.1"}, false},
		{[]string{"-target=ingester", "-server.grpc-listen-address=0.0.0.0", "-memberlist.bind-addr=0.0.0.0", "-auth.none-allow-non-loopback"}, false},
	} {
		cfg, err := LoadConfig(tc.args, &bytes.Buffer{})
		require.NoError(t, err)
		var out bytes.Buffer
		v := &Vigil{Cfg: *cfg, Logger: log.NewLogfmtLogger(&out)}
		v.warnLoopbackCluster()
		require.Equal(t, tc.warn, strings.Contains(out.String(), "listens on loopback only"), "%v: %s", tc.args, out.String())
	}
}
