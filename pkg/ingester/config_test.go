package ingester

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestApplyRuntime: the configured GC target and memory limit apply unless
// the environment sets them.
func TestApplyRuntime(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	cfg := testConfig()
	cfg.GCPercent, cfg.MemoryLimit = 40, 1<<30

	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv(env); ok {
			t.Setenv(env, v) // restored after the test
			require.NoError(t, os.Unsetenv(env))
		}
	}
	gc, limit := cfg.ApplyRuntime()
	require.Equal(t, 40, gc)
	require.Equal(t, int64(1<<30), limit)
	require.Equal(t, 40, debug.SetGCPercent(40))
	require.Equal(t, int64(1<<30), debug.SetMemoryLimit(-1))

	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "2GiB")
	debug.SetGCPercent(100)
	gc, limit = cfg.ApplyRuntime()
	require.Equal(t, -1, gc, "GOGC wins")
	require.Equal(t, int64(-1), limit, "GOMEMLIMIT wins")
	require.Equal(t, 100, debug.SetGCPercent(100))
}

// TestIsolationOffByDefault: ingester heads run without read isolation
// unless asked, as Cortex's and Mimir's do.
func TestIsolationOffByDefault(t *testing.T) {
	ing := startIngester(t, testConfig(), t.TempDir(), newKV(t))
	require.True(t, ing.tsdbOptions(&seriesCounter{}, &shipper{}).IsolationDisabled)
	ing.cfg.Isolation = true
	require.False(t, ing.tsdbOptions(&seriesCounter{}, &shipper{}).IsolationDisabled)
}
