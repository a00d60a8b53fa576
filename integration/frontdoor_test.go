package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/vigil"
)

// gauge reads one unlabelled gauge of the process.
func gauge(t *testing.T, v *vigil.Vigil, name string) float64 {
	t.Helper()
	mfs, err := v.Gatherer.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && mf.GetType() == dto.MetricType_GAUGE && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// headerOnlyPush opens a connection and sends a remote write's headers,
// signed with a known access key but a made-up signature, declaring a
// body of length bytes that never comes.
func headerOnlyPush(t *testing.T, addr, ws, key string, length int, declareHash bool) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	now := time.Now().UTC()
	var b strings.Builder
	fmt.Fprintf(&b, "POST /workspaces/%s/api/v1/remote_write HTTP/1.1\r\nHost: %s\r\n", ws, addr)
	signed := "host;x-amz-date"
	if declareHash {
		signed = "host;x-amz-content-sha256;x-amz-date"
		fmt.Fprintf(&b, "X-Amz-Content-Sha256: %s\r\n", strings.Repeat("ab", 32))
	}
	fmt.Fprintf(&b, "Authorization: AWS4-HMAC-SHA256 Credential=%s/%s/us-east-1/aps/aws4_request, SignedHeaders=%s, Signature=%s\r\n",
		key, now.Format("20060102"), signed, strings.Repeat("0", 64))
	fmt.Fprintf(&b, "X-Amz-Date: %s\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: %d\r\n\r\n",
		now.Format("20060102T150405Z"), length)
	_, err = conn.Write([]byte(b.String()))
	require.NoError(t, err)
	return conn
}

// signedWorkspace creates a workspace with the admin's key and returns a
// function pushing one sample of the series (metric, labels) to it with
// the writer's key, through Prometheus's sigv4 remote-write client.
func signedWorkspace(t *testing.T, v *vigil.Vigil, metric string, labels map[string]string) (string, func() error) {
	t.Helper()
	ctx := context.Background()
	created, err := keyAdmin.amp(v.BaseURL()).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String(metric)})
	require.NoError(t, err)
	ws := *created.WorkspaceId
	writer := signedWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write", keyWriter.id, keyWriter.secret)
	return ws, func() error {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series(metric, labels, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1})}}
		_, err := writer.Store(ctx, encode(t, req), 0)
		return err
	}
}

// TestHeaderOnlyConnectionsHoldNoMemory: with SigV4, a few hundred
// connections that send a remote write's headers (a known key, a fresh date,
// a made-up signature, a declared body of 1 MB) and no body keep the
// process's heap within 40 MB of where it was; an honest push goes through
// meanwhile. Before the front door read bodies as they arrive, each such
// connection allocated its declared length at once: 300 MB here.
func TestHeaderOnlyConnectionsHoldNoMemory(t *testing.T) {
	v, _ := startSigV4(t)
	ws, push := signedWorkspace(t, v, "front_door_up", nil)
	require.NoError(t, push())

	const conns, bound = 300, 40 << 20
	before := heapInUse()
	var open []net.Conn
	for range conns {
		open = append(open, headerOnlyPush(t, v.HTTPAddr(), ws, keyWriter.id, 1_000_000, false))
	}
	defer func() {
		for _, c := range open {
			_ = c.Close()
		}
	}()
	// Every connection is waiting for its body once the front door holds a
	// first buffer for each.
	require.Eventually(t, func() bool {
		return gauge(t, v, "vigil_api_inflight_request_body_bytes") >= conns*16<<10
	}, 30*time.Second, 20*time.Millisecond)
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap grew %d KB for %d header-only connections (%d bytes each)", grown>>10, conns, grown/conns)
	require.Less(t, grown, int64(bound), "header-only connections hold memory")
	require.NoError(t, push(), "an honest push succeeds meanwhile")

	// A declared payload hash lets the signature be checked first: the
	// made-up one is refused without waiting for the body.
	c := headerOnlyPush(t, v.HTTPAddr(), ws, keyWriter.id, 1_000_000, true)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err, "answered before the body was sent")
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	for _, c := range open {
		_ = c.Close()
	}
	require.Eventually(t, func() bool { return gauge(t, v, "vigil_api_inflight_request_body_bytes") == 0 },
		30*time.Second, 20*time.Millisecond, "closed connections give their memory back")
}

// TestQueriesSignedByBotocoreWithLiteralBrackets: a series call signed by
// botocore over a URL written with literal brackets, and sent as written,
// verifies; so does the percent-encoded form.
func TestQueriesSignedByBotocoreWithLiteralBrackets(t *testing.T) {
	v, _ := startSigV4(t)
	ws, push := signedWorkspace(t, v, "bracket_up", map[string]string{"job": "a b"})
	require.NoError(t, push())

	series := workspaceURL(v.BaseURL(), ws) + "/api/v1/series"
	urls := []string{
		series + `?match[]=bracket_up{job="a+b"}`,
		series + "?match%5B%5D=bracket_up%7Bjob%3D%22a%20b%22%7D",
	}
	var specs []map[string]any
	for _, u := range urls {
		specs = append(specs, map[string]any{"method": "GET", "url": u, "params": nil})
	}
	in, err := json.Marshal(specs)
	require.NoError(t, err)
	cmd := exec.Command("python3", "../pkg/auth/testdata/botocore_sign.py", keyReader.id, keyReader.secret, "us-east-1")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	require.NoError(t, err)
	var signed []struct {
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
	}
	require.NoError(t, json.Unmarshal(out, &signed))
	for i, s := range signed {
		r, err := http.NewRequest(http.MethodGet, s.URL, nil)
		require.NoError(t, err)
		_, r.URL.RawQuery, _ = strings.Cut(s.URL, "?") // as written, brackets and all
		for k, val := range s.Headers {
			r.Header.Set(k, val)
		}
		resp, err := http.DefaultClient.Do(r)
		require.NoError(t, err)
		var body struct {
			Status string              `json:"status"`
			Data   []map[string]string `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, urls[i])
		require.Len(t, body.Data, 1, urls[i])
		require.Equal(t, "a b", body.Data[0]["job"])
	}
}
