package integration

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAdminEndpointsOnlyOnAdminListener: the operator endpoints, and above
// all the ring's forget action, are not reachable on the public port; they
// work on the admin listener.
func TestAdminEndpointsOnlyOnAdminListener(t *testing.T) {
	// A slow heartbeat keeps the forgotten instance out of the ring long
	// enough to see it gone.
	v := startMonolith(t, t.TempDir(), "-ingester.ring.heartbeat-period=1m")
	status := func(method, u string, form url.Values) (int, string) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, u, body)
		require.NoError(t, err)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	forget := url.Values{"forget": {"ingester-1"}}

	for _, path := range []string{"/ingester/ring", "/services", "/config", "/debug/pprof/"} {
		code, _ := status(http.MethodGet, v.BaseURL()+path, nil)
		require.Equal(t, http.StatusNotFound, code, "public port serves %s", path)
	}
	code, _ := status(http.MethodPost, v.BaseURL()+"/ingester/ring", forget)
	require.Equal(t, http.StatusNotFound, code, "the forget action is reachable on the public port")
	code, page := status(http.MethodGet, v.AdminURL()+"/ingester/ring", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "ingester-1", "the public request must not have forgotten the ingester")

	for _, path := range []string{"/services", "/config", "/debug/pprof/", "/metrics", "/ready"} {
		code, _ := status(http.MethodGet, v.AdminURL()+path, nil)
		require.Equal(t, http.StatusOK, code, "admin listener serves %s", path)
	}
	for _, path := range []string{"/metrics", "/ready"} {
		code, _ := status(http.MethodGet, v.BaseURL()+path, nil)
		require.Equal(t, http.StatusOK, code, "public port serves %s", path)
	}

	code, _ = status(http.MethodPost, v.AdminURL()+"/ingester/ring", forget)
	require.Less(t, code, 400)
	require.Eventually(t, func() bool {
		_, page := status(http.MethodGet, v.AdminURL()+"/ingester/ring", nil)
		return !strings.Contains(page, "ingester-1")
	}, 10*time.Second, 50*time.Millisecond, "the forget action on the admin listener removes the instance")
}
