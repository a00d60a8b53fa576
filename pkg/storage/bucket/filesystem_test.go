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
