// Package bucket builds the object-storage client every stateful component
// shares: a local directory on a laptop, S3 (or MinIO) in a cluster.
package bucket

import (
	"flag"
	"fmt"
	"path/filepath"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/s3"
)

// Backends.
const (
	Filesystem = "filesystem"
	S3         = "s3"
)

// Config selects and configures the object-storage backend.
type Config struct {
	Backend    string           `yaml:"backend"`
	Filesystem FilesystemConfig `yaml:"filesystem"`
	S3         S3Config         `yaml:"s3"`
}

// FilesystemConfig configures the filesystem backend.
type FilesystemConfig struct {
	Dir string `yaml:"dir"`
}

// S3Config configures the S3 backend.
type S3Config struct {
	Endpoint        string         `yaml:"endpoint"`
	BucketName      string         `yaml:"bucket_name"`
	Region          string         `yaml:"region"`
	AccessKeyID     string         `yaml:"access_key_id"`
	SecretAccessKey flagext.Secret `yaml:"secret_access_key"`
	Insecure        bool           `yaml:"insecure"`
	PathStyle       bool           `yaml:"path_style"`
}

// RegisterFlags registers the storage flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Backend, "storage.backend", Filesystem, "Object-storage backend: filesystem or s3.")
	f.StringVar(&c.Filesystem.Dir, "storage.filesystem.dir", "", "Directory of the filesystem backend. Defaults to <data-dir>/bucket.")
	f.StringVar(&c.S3.Endpoint, "storage.s3.endpoint", "", "S3 endpoint (host:port), for example a MinIO server.")
	f.StringVar(&c.S3.BucketName, "storage.s3.bucket-name", "", "S3 bucket name.")
	f.StringVar(&c.S3.Region, "storage.s3.region", "", "S3 region.")
	f.StringVar(&c.S3.AccessKeyID, "storage.s3.access-key-id", "", "S3 access key ID. Empty: credentials come from the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), then the AWS credentials file, then the host's IAM role.")
	f.Var(&c.S3.SecretAccessKey, "storage.s3.secret-access-key", "S3 secret access key (with -storage.s3.access-key-id).")
	f.BoolVar(&c.S3.Insecure, "storage.s3.insecure", false, "Use plain HTTP to reach the S3 endpoint.")
	f.BoolVar(&c.S3.PathStyle, "storage.s3.path-style", false, "Address the bucket in the path (endpoint/bucket/object) rather than in the host name. Default: path style for every endpoint but AWS's own.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch c.Backend {
	case Filesystem:
		return nil
	case S3:
		if c.S3.Endpoint == "" || c.S3.BucketName == "" {
			return fmt.Errorf("storage.s3.endpoint and storage.s3.bucket-name are required with the s3 backend")
		}
		return nil
	default:
		return fmt.Errorf("unsupported storage.backend %q (supported: %s, %s)", c.Backend, Filesystem, S3)
	}
}

// NewClient returns a bucket client. dataDir is the root of local state; the
// filesystem backend lives under it unless a directory is configured.
func NewClient(c Config, dataDir string, logger log.Logger) (objstore.Bucket, error) {
	switch c.Backend {
	case Filesystem:
		dir := c.Filesystem.Dir
		if dir == "" {
			dir = filepath.Join(dataDir, "bucket")
		}
		return newFilesystem(dir)
	case S3:
		sc := s3.DefaultConfig
		sc.Endpoint = c.S3.Endpoint
		sc.Bucket = c.S3.BucketName
		sc.Region = c.S3.Region
		sc.AccessKey = c.S3.AccessKeyID
		sc.SecretKey = c.S3.SecretAccessKey.String()
		sc.Insecure = c.S3.Insecure
		if c.S3.PathStyle {
			sc.BucketLookupType = s3.PathLookup
		}
		return s3.NewBucketWithConfig(logger, sc, "vigil", nil)
	default:
		return nil, fmt.Errorf("unsupported storage.backend %q", c.Backend)
	}
}

// NewInstrumentedClient returns the bucket client of NewClient counting and
// timing every operation (vigil_objstore_bucket_* metrics, by operation).
func NewInstrumentedClient(c Config, dataDir string, reg prometheus.Registerer, logger log.Logger) (objstore.Bucket, error) {
	bkt, err := NewClient(c, dataDir, logger)
	if err != nil {
		return nil, err
	}
	return objstore.WrapWithMetrics(bkt, prometheus.WrapRegistererWithPrefix("vigil_", reg), "vigil"), nil
}

// WorkspacesPrefix is where the objects of every workspace live, one
// directory per workspace; the control plane keeps its documents apart,
// under control/.
const WorkspacesPrefix = "workspaces/"

// ForWorkspace returns a view of bkt holding only the objects of one
// workspace: every name it reads or writes is under that workspace's prefix.
func ForWorkspace(bkt objstore.Bucket, workspace string) objstore.Bucket {
	return objstore.NewPrefixedBucket(bkt, WorkspacesPrefix+workspace)
}
