package frontend

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// fakeMemcached speaks the part of memcached's text protocol the cache
// client uses: gets and set.
type fakeMemcached struct {
	mu    sync.Mutex
	items map[string][]byte
}

func startFakeMemcached(t *testing.T) (*fakeMemcached, string) {
	m := &fakeMemcached{items: map[string][]byte{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go m.serve(conn)
		}
	}()
	return m, lis.Addr().String()
}

func (m *fakeMemcached) serve(conn net.Conn) {
	defer conn.Close()
	rw := bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn))
	for {
		line, err := rw.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && (f[0] == "gets" || f[0] == "get"):
			m.mu.Lock()
			for _, k := range f[1:] {
				if v, ok := m.items[k]; ok {
					fmt.Fprintf(rw, "VALUE %s 0 %d 1\r\n%s\r\n", k, len(v), v)
				}
			}
			m.mu.Unlock()
			fmt.Fprintf(rw, "END\r\n")
		case len(f) >= 5 && f[0] == "set":
			n, _ := strconv.Atoi(f[4])
			data := make([]byte, n+2)
			if _, err := io.ReadFull(rw, data); err != nil {
				return
			}
			m.mu.Lock()
			m.items[f[1]] = data[:n]
			m.mu.Unlock()
			fmt.Fprintf(rw, "STORED\r\n")
		default:
			fmt.Fprintf(rw, "ERROR\r\n")
		}
		if rw.Flush() != nil {
			return
		}
	}
}

func (m *fakeMemcached) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

// TestMemcachedResultsCache: with -query-frontend.results-cache.backend=
// memcached, legs are stored in memcached and a second frontend (another
// replica) answers from them.
func TestMemcachedResultsCache(t *testing.T) {
	mc, addr := startFakeMemcached(t)
	b := &backend{handlers: map[string]http.Handler{"ws-a": promAPI(storageWith(t, "requests_total", 3, dataFrom, dataTo, 15*time.Second))}}
	cfg := defaultConfig()
	cfg.ResultsCache.Backend = BackendMemcached
	cfg.ResultsCache.Memcached.Addresses = []string{addr}
	require.NoError(t, cfg.Validate())
	newFE := func() *Frontend {
		f, err := New(cfg, testLimits{}, nil, time.Minute, prometheus.NewRegistry(), log.NewNopLogger())
		require.NoError(t, err)
		t.Cleanup(f.cache.Stop)
		f.downstream = b.do
		f.now = func() time.Time { return dataTo.Add(time.Hour) }
		return f
	}
	form := rangeForm(`sum(rate(requests_total[5m]))`, dataFrom.Add(time.Hour), dataTo.Add(-time.Hour), "300")
	code, first := get(t, newFE().Handler(), "ws-a", rangePath, form)
	require.Equal(t, http.StatusOK, code, first)
	require.Equal(t, int64(3), b.calls.Load())
	require.Eventually(t, func() bool { return mc.len() == 3 }, 5*time.Second, 10*time.Millisecond, "legs stored asynchronously")

	code, second := get(t, newFE().Handler(), "ws-a", rangePath, form)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, first, second)
	require.Equal(t, int64(3), b.calls.Load(), "answered from memcached")
}
