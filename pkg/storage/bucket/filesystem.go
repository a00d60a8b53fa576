package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// uploadsDir is where the filesystem backend writes an object before it
// renames it into place: at the root, beside workspaces/ and control/,
// where nothing lists.
const uploadsDir = ".uploads"

// atomicFilesystem is the filesystem backend whose uploads are atomic, as
// S3's are: an object is written to a file of its own and renamed into
// place, so a reader sees the old object or the new one, never one half
// written (objstore's filesystem bucket writes in place, and a control-plane
// document read during its replacement failed to decode), and an upload
// that fails leaves the object as it was.
type atomicFilesystem struct {
	*filesystem.Bucket
	root string
}

func newFilesystem(dir string) (objstore.Bucket, error) {
	b, err := filesystem.NewBucket(dir)
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return atomicFilesystem{Bucket: b, root: root}, nil
}

// Upload writes the object to a temporary file, then renames it over name.
func (b atomicFilesystem) Upload(ctx context.Context, name string, r io.Reader, _ ...objstore.ObjectUploadOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file := filepath.Join(b.root, name)
	tmpDir := filepath.Join(b.root, uploadsDir)
	for _, dir := range []string{filepath.Dir(file), tmpDir} {
		if err := os.MkdirAll(dir, os.ModePerm); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(tmpDir, "object-*")
	if err != nil {
		return err
	}
	// Readable as objstore's own uploads are (CreateTemp makes it 0600):
	// other processes sharing the directory read it.
	err = f.Chmod(0o644)
	if err == nil {
		_, err = io.Copy(f, r)
	}
	if err != nil {
		err = fmt.Errorf("copy to %s: %w", file, err)
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
