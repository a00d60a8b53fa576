package tsdb

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeFiles(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ChunksDirname), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ChunksDirname, "000001"), []byte("chunks"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, IndexFilename), []byte("index"), 0o644))
}
