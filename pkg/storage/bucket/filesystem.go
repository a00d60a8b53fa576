package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// uploadsDir is where the filesystem backend writes an object before it
// renames it into place: at the root, beside workspaces/ and control/,
// where nothing lists.
const uploadsDir = ".uploads"

// staleUpload is the age past which a file left in uploadsDir (by a
// process killed while it uploaded) is removed when a process opens the
// bucket; other processes sharing the directory may be uploading younger
// ones.
const staleUpload = time.Hour

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
	removeStaleUploads(filepath.Join(root, uploadsDir), time.Now().Add(-staleUpload))
	return atomicFilesystem{Bucket: b, root: root}, nil
}

// removeStaleUploads removes the upload files older than before.
func removeStaleUploads(dir string, before time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), "object-") && info.ModTime().Before(before) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Upload writes the object to a temporary file, then renames it over name.
func (b atomicFilesystem) Upload(ctx context.Context, name string, r io.Reader, _ ...objstore.ObjectUploadOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file := filepath.Join(b.root, name)
	tmpDir := filepath.Join(b.root, uploadsDir)
	if err := os.MkdirAll(tmpDir, os.ModePerm); err != nil {
		return err
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
	if err == nil {
		err = f.Sync() // the object renamed into place holds its bytes
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = renameInto(f.Name(), file)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// renameInto renames tmp to file, making file's directory; a Delete of a
// neighbour may remove that directory, empty, in between, so it is made
// again.
func renameInto(tmp, file string) error {
	var err error
	for range 3 {
		if err = os.MkdirAll(filepath.Dir(file), os.ModePerm); err != nil {
			return err
		}
		if err = os.Rename(tmp, file); !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// Delete removes the object (or every object under a prefix), then its
// directories left empty, each removed only if it is empty when removed:
// objstore's Delete checks that a directory is empty and then removes it
// whole, which takes with it an object renamed into it in between.
func (b atomicFilesystem) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file := filepath.Join(b.root, name)
	if err := os.RemoveAll(file); err != nil {
		return fmt.Errorf("rm %s: %w", file, err)
	}
	for dir := filepath.Dir(file); dir != b.root && strings.HasPrefix(dir, b.root+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty, or gone
		}
	}
	return nil
}
