package bucket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFilesystemUploadsAreAtomic: a reader of an object being replaced
// reads the old object or the new one, whole, never a part; an upload that
// fails leaves the object as it was, and no temporary file behind.
func TestFilesystemUploadsAreAtomic(t *testing.T) {
	dir := t.TempDir()
	bkt, err := NewClient(Config{Backend: Filesystem}, dir, nil)
	require.NoError(t, err)
	ctx := context.Background()
	const size = 1 << 20
	versions := [][]byte{bytes.Repeat([]byte("a"), size), bytes.Repeat([]byte("b"), size)}
	require.NoError(t, bkt.Upload(ctx, "control/doc.json", bytes.NewReader(versions[0])))

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 0; i < 200; i++ {
			if err := bkt.Upload(ctx, "control/doc.json", bytes.NewReader(versions[i%2])); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	reads := 0
	for stop := false; !stop; reads++ {
		select {
		case <-done:
			stop = true
		default:
		}
		rc, err := bkt.Get(ctx, "control/doc.json")
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.True(t, bytes.Equal(got, versions[0]) || bytes.Equal(got, versions[1]), "read %d: %d bytes, not one whole version", reads, len(got))
	}
	wg.Wait()

	rc, err := bkt.Get(ctx, "control/doc.json")
	require.NoError(t, err)
	before, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	err = bkt.Upload(ctx, "control/doc.json", io.MultiReader(bytes.NewReader([]byte("partial")), failingReader{}))
	require.Error(t, err)
	rc, err = bkt.Get(ctx, "control/doc.json")
	require.NoError(t, err)
	after, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, before, after, "a failed upload leaves the object as it was")
	left, err := os.ReadDir(filepath.Join(dir, "bucket", uploadsDir))
	require.NoError(t, err)
	require.Empty(t, left, "no temporary file left behind")

	st, err := os.Stat(filepath.Join(dir, "bucket", "control", "doc.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm(), "readable by other processes sharing the directory")

	// Nothing lists the uploads directory as an object.
	var names []string
	require.NoError(t, bkt.Iter(ctx, "control/", func(name string) error {
		names = append(names, name)
		return nil
	}))
	require.Equal(t, []string{"control/doc.json"}, names)
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestFilesystemDeleteBesideAnUpload: deleting an object whose directory
// an upload is about to rename into leaves that upload whole (objstore's
// Delete removed the directory it found empty, whatever came into it).
func TestFilesystemDeleteBesideAnUpload(t *testing.T) {
	bkt, err := NewClient(Config{Backend: Filesystem}, t.TempDir(), nil)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, bkt.Upload(ctx, "ws/markers/b1", bytes.NewReader([]byte("1"))))
	pr, pw := io.Pipe()
	uploaded := make(chan error, 1)
	go func() { uploaded <- bkt.Upload(ctx, "ws/markers/b2", pr) }()
	_, err = pw.Write([]byte("2")) // the upload is under way
	require.NoError(t, err)
	require.NoError(t, bkt.Delete(ctx, "ws/markers/b1"))
	require.NoError(t, pw.Close())
	require.NoError(t, <-uploaded)
	rc, err := bkt.Get(ctx, "ws/markers/b2")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, "2", string(got))

	// Its directories go once empty, not before.
	require.NoError(t, bkt.Delete(ctx, "ws/markers/b2"))
	ok, err := bkt.Exists(ctx, "ws/markers/b2")
	require.NoError(t, err)
	require.False(t, ok)
	var names []string
	require.NoError(t, bkt.Iter(ctx, "", func(name string) error {
		names = append(names, name)
		return nil
	}))
	require.Empty(t, names, "ws/ removed once empty (and the empty uploads directory is not listed)")
}

// TestFilesystemStaleUploadsRemoved: files a killed process left in the
// uploads directory are removed when the bucket is opened, once an hour
// old; younger ones may be another process's uploads under way.
func TestFilesystemStaleUploadsRemoved(t *testing.T) {
	dir := t.TempDir()
	uploads := filepath.Join(dir, "bucket", uploadsDir)
	require.NoError(t, os.MkdirAll(uploads, 0o755))
	old, young := filepath.Join(uploads, "object-old"), filepath.Join(uploads, "object-young")
	for _, f := range []string{old, young} {
		require.NoError(t, os.WriteFile(f, []byte("x"), 0o644))
	}
	require.NoError(t, os.Chtimes(old, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)))
	_, err := NewClient(Config{Backend: Filesystem}, dir, nil)
	require.NoError(t, err)
	_, err = os.Stat(old)
	require.True(t, os.IsNotExist(err), "the stale upload is removed")
	_, err = os.Stat(young)
	require.NoError(t, err, "a young one is kept")
}
