//go:build e2e

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

const (
	minioUser = "vigil-test"
)

// minioServer is a real MinIO server on loopback, installed by
// `make install-minio`.
type minioServer struct {
	bin, dir, console string
	endpoint          string
	// secret is this server's own root password: a server of another test
	// run that took its port does not accept it.
	secret string
	cmd    *exec.Cmd
	exited <-chan struct{}
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
	s := &minioServer{bin: bin, dir: t.TempDir(), secret: fmt.Sprintf("vigil-test-%016x", rand.Uint64())}
	t.Cleanup(s.stop)
	// MinIO is told its ports: on a clash with another program (another
	// test run) it exits, and starts again on others.
	retryOnPortClash(t, "minio", func() (<-chan struct{}, func() bool) {
		s.endpoint = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		s.console = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		return s.launch(t), s.ready
	})
	return s
}

// start starts the server again on its address and directory (after
// stop): the endpoint Vigil was told must not change.
func (s *minioServer) start(t *testing.T) {
	t.Helper()
	require.True(t, waitReadyOrExit(t, "minio", s.launch(t), s.ready), "minio could not start again on %s", s.endpoint)
}

// launch starts the process; the channel closes when it exits.
func (s *minioServer) launch(t *testing.T) <-chan struct{} {
	t.Helper()
	cmd := exec.Command(s.bin, "server", s.dir, "--address", s.endpoint, "--console-address", s.console, "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+s.secret, "MINIO_BROWSER=off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	s.cmd = cmd
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.exited = exited
	return exited
}

// ready tells whether this server answers on its endpoint: a request
// signed with its own secret succeeds (another run's server on the same
// port refuses it).
func (s *minioServer) ready() bool {
	mc, err := minio.New(s.endpoint, &minio.Options{Creds: credentials.NewStaticV4(minioUser, s.secret, ""), Secure: false})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = mc.ListBuckets(ctx)
	return err == nil
}

func (s *minioServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.cmd = nil
	}
}

// backend creates a bucket and returns the storage backend over it.
func (s *minioServer) backend(t *testing.T, name string) storageBackend {
	t.Helper()
	mc, err := minio.New(s.endpoint, &minio.Options{Creds: credentials.NewStaticV4(minioUser, s.secret, ""), Secure: false})
	require.NoError(t, err)
	require.NoError(t, mc.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}))
	flags := []string{
		"-storage.backend=s3", "-storage.s3.endpoint=" + s.endpoint, "-storage.s3.bucket-name=" + name,
		"-storage.s3.access-key-id=" + minioUser, "-storage.s3.secret-access-key=" + s.secret, "-storage.s3.insecure=true",
	}
	var cfg bucket.Config
	cfg.Backend = bucket.S3
	cfg.S3 = bucket.S3Config{Endpoint: s.endpoint, BucketName: name, AccessKeyID: minioUser, Insecure: true}
	require.NoError(t, cfg.S3.SecretAccessKey.Set(s.secret))
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
	t.Run("ObjectStorageOutage", func(t *testing.T) {
		testObjectStorageOutage(t, s)
	})
}

// outage is how long object storage is down in testObjectStorageOutage.
const outage = 2 * time.Minute

// testObjectStorageOutage: while object storage is down for minutes, writes
// are accepted and recent data is queried; once it is back every block is
// uploaded, once: the samples in the bucket are exactly those written.
func testObjectStorageOutage(t *testing.T, s *minioServer) {
	store := s.backend(t, "vigil-outage")
	// The old samples are hours old: backfilled, as an operator may allow.
	v := startMonolith(t, t.TempDir(), append([]string{"-ingester.tsdb.ship-interval=1s", "-validation.past-grace-period=0"}, store.flags...)...)
	ws := createWorkspace(t, v.BaseURL(), "outage")
	rw := remoteWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write")
	data := newSampleSet(time.Now().Truncate(time.Second))

	_, err := rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: data.old}), 0)
	require.NoError(t, err)
	s.stop()
	resp, err := http.Post("http://"+v.AdminAddr()+"/ingester/flush", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode, "the block cannot be uploaded")
	_, err = rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: data.new}), 0)
	require.NoError(t, err, "writes are accepted while object storage is down")
	// Writes and queries go on for minutes, while every ship fails.
	api := promClient(t, workspaceURL(v.BaseURL(), ws))
	var during []prompb.TimeSeries
	for end := time.Now().Add(outage); time.Now().Before(end); time.Sleep(5 * time.Second) {
		now := time.Now()
		batch := make([]prompb.TimeSeries, len(data.new))
		for i, ts := range data.new {
			batch[i] = prompb.TimeSeries{Labels: ts.Labels, Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: float64(now.Unix())}}}
		}
		_, err = rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: batch}), 0)
		require.NoError(t, err, "writes are accepted while object storage is down")
		during = append(during, batch...)
		res, _, _, err := api.Query(context.Background(), "count(lts_requests_total)", now)
		require.NoError(t, err, "recent data is queried while object storage is down")
		require.Equal(t, "{} => 5", strings.Split(res.String(), " @")[0])
	}

	s.start(t)
	flush(t, v.AdminAddr())
	var samples uint64
	require.Eventually(t, func() bool {
		scan, err := vtsdb.ScanBucket(context.Background(), bucket.ForWorkspace(store.bkt, ws), nil, time.Now())
		if err != nil || len(scan.Partial) > 0 {
			return false
		}
		samples = 0
		for _, b := range scan.Index.Blocks {
			samples += b.Samples
		}
		return len(scan.Index.Blocks) == 2
	}, time.Minute, 200*time.Millisecond, "both blocks are uploaded once object storage is back")
	var written uint64
	for _, set := range [][]prompb.TimeSeries{data.old, data.new, during} {
		for _, ts := range set {
			written += uint64(len(ts.Samples))
		}
	}
	require.Equal(t, written, samples, "every sample once: no block lost or duplicated")
}
