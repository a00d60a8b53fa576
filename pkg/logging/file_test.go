package logging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFileRotatesBySize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	f, err := OpenFile(path, 100, 2)
	require.NoError(t, err)
	line := strings.Repeat("x", 39) + "\n" // 40 bytes
	for i := 0; i < 7; i++ {
		_, err := f.Write([]byte(line))
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	// 7 records of 40 bytes, at most 2 per 100-byte file: current holds 1,
	// .1 and .2 hold 2 each, and the oldest 2 are gone.
	for name, want := range map[string]int{path: 1, path + ".1": 2, path + ".2": 2} {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		require.Equal(t, want, strings.Count(string(b), "\n"), name)
	}
	_, err = os.Stat(path + ".3")
	require.True(t, os.IsNotExist(err))

	// Reopening appends.
	f, err = OpenFile(path, 100, 2)
	require.NoError(t, err)
	_, err = f.Write([]byte(line))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(b), "\n"))
}
