package distributor

import (
	"sync/atomic"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// inflight counts the push requests a distributor is handling, from their
// arrival until every replica answered, and the memory they take.
type inflight struct {
	limits   InstanceLimits
	requests atomic.Int64
	bytes    atomic.Int64
}

var (
	errMaxInflightRequests = "the write request has been rejected because the distributor exceeded the allowed number of inflight push requests (limit: %d, -distributor.instance-limits.max-inflight-push-requests); retry later"
	errMaxInflightBytes    = "the write request has been rejected because the distributor exceeded the allowed size of inflight push requests (limit: %d bytes, -distributor.instance-limits.max-inflight-push-requests-bytes); retry later"
)

// ticket is one request's share of the in-flight totals.
type ticket struct {
	f     *inflight
	bytes int64
}

// start counts a request in, unless too many are in flight.
func (f *inflight) start() (*ticket, error) {
	n := f.requests.Add(1)
	if max := int64(f.limits.MaxInflightPushRequests); max > 0 && n > max {
		f.requests.Add(-1)
		return nil, apierror.New(apierror.Unavailable, apierror.IDDistributorMaxInflightRequests, errMaxInflightRequests, max)
	}
	return &ticket{f: f}, nil
}

// reserve counts n more bytes of the request, unless that would take the
// requests in flight over the limit; nothing is counted then.
func (t *ticket) reserve(n int) error {
	total := t.f.bytes.Add(int64(n))
	if max := int64(t.f.limits.MaxInflightPushRequestsBytes); max > 0 && total > max {
		t.f.bytes.Add(-int64(n))
		return apierror.New(apierror.Unavailable, apierror.IDDistributorMaxInflightBytes, errMaxInflightBytes, max)
	}
	t.bytes += int64(n)
	return nil
}

// done counts the request out.
func (t *ticket) done() {
	t.f.bytes.Add(-t.bytes)
	t.f.requests.Add(-1)
}
