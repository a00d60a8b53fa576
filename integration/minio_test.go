//go:build e2e

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
)

const (
	minioUser   = "vigil-test"
	minioSecret = "vigil-test-secret"
)

// minioServer is a real MinIO server on loopback, installed by
// `make install-minio`.
type minioServer struct {
	endpoint string
	cmd      *exec.Cmd
}

func startMinIO(t *testing.T) *minioServer {
	t.Helper()
	bin := filepath.Join(os.Getenv("HOME"), "go", "bin", "minio")
	if gopath := os.Getenv("GOPATH"); gopath != "" {
		bin = filepath.Join(gopath, "bin", "minio")
	}
	if p, err := exec.LookPath("minio"); err == nil {
		bin = p
	}
	require.FileExists(t, bin, "run `make install-minio`")
	port, console := freePort(t), freePort(t)
	s := &minioServer{endpoint: fmt.Sprintf("127.0.0.1:%d", port)}
	s.cmd = exec.Command(bin, "server", t.TempDir(), "--address", s.endpoint, "--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
	s.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioSecret, "MINIO_BROWSER=off")
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, s.cmd.Start())
	t.Cleanup(s.stop)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + s.endpoint + "/minio/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "minio never became ready")
	return s
}

func (s *minioServer) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// backend creates a bucket and returns the storage backend over it.
func (s *minioServer) backend(t *testing.T, name string) storageBackend {
	t.Helper()
	mc, err := minio.New(s.endpoint, &minio.Options{Creds: credentials.NewStaticV4(minioUser, minioSecret, ""), Secure: false})
	require.NoError(t, err)
	require.NoError(t, mc.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}))
	flags := []string{
		"-storage.backend=s3", "-storage.s3.endpoint=" + s.endpoint, "-storage.s3.bucket-name=" + name,
		"-storage.s3.access-key-id=" + minioUser, "-storage.s3.secret-access-key=" + minioSecret, "-storage.s3.insecure=true",
	}
	var cfg bucket.Config
	cfg.Backend = bucket.S3
	cfg.S3 = bucket.S3Config{Endpoint: s.endpoint, BucketName: name, AccessKeyID: minioUser, Insecure: true}
	require.NoError(t, cfg.S3.SecretAccessKey.Set(minioSecret))
	bkt, err := bucket.NewClient(cfg, t.TempDir(), log.NewNopLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = bkt.Close() })
	return storageBackend{flags: flags, bkt: bkt}
}

// TestStorageOnMinIO runs the long-term storage suite against a real S3
// server.
func TestStorageOnMinIO(t *testing.T) {
	s := startMinIO(t)
	t.Run("QueriesSpanIngestersAndStore", func(t *testing.T) {
		testQueriesSpanIngestersAndStore(t, s.backend(t, "vigil-span"))
	})
	t.Run("DeletedWorkspaceDataIsGone", func(t *testing.T) {
		testDeletedWorkspaceDataIsGone(t, s.backend(t, "vigil-delete"))
	})
}
