package distributor

import (
	"sync/atomic"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/inflight"
)

// inflightPushes counts the push requests a distributor is handling, from their
// arrival until every replica answered, and the memory they take, which
// comes out of the process's budget of request memory.
type inflightPushes struct {
	limits   InstanceLimits
	budget   *inflight.Budget
	requests atomic.Int64
	bytes    atomic.Int64 // this distributor's share of the budget
}

var (
	errMaxInflightRequests = "the write request has been rejected because the distributor exceeded the allowed number of inflight push requests (limit: %d, -distributor.instance-limits.max-inflight-push-requests); retry later"
	errMaxInflightBytes    = "the write request has been rejected because the distributor exceeded the allowed size of inflight push requests (limit: %d bytes, -distributor.instance-limits.max-inflight-push-requests-bytes); retry later"
)

// ticket is one request's share of the in-flight totals.
type ticket struct {
	f        *inflightPushes
	bytes    int64
	finished atomic.Bool
}

// start counts a request in, unless too many are in flight.
func (f *inflightPushes) start() (*ticket, error) {
	n := f.requests.Add(1)
	if max := int64(f.limits.MaxInflightPushRequests); max > 0 && n > max {
		f.requests.Add(-1)
		return nil, apierror.New(apierror.Unavailable, apierror.IDDistributorMaxInflightRequests, errMaxInflightRequests, max)
	}
	return &ticket{f: f}, nil
}

// reserve counts n more bytes of the request, unless that would take the
// requests in flight over the budget; nothing is counted then.
func (t *ticket) reserve(n int) error {
	if !t.f.budget.Take(n) {
		return apierror.New(apierror.Unavailable, apierror.IDDistributorMaxInflightBytes, errMaxInflightBytes, t.f.budget.Limit())
	}
	t.f.bytes.Add(int64(n))
	t.bytes += int64(n)
	return nil
}

// done counts the request out. Only its first call counts: the request's
// clean-up and a recovered panic may both call it.
func (t *ticket) done() {
	if !t.finished.CompareAndSwap(false, true) {
		return
	}
	t.f.budget.Give(int(t.bytes))
	t.f.bytes.Add(-t.bytes)
	t.f.requests.Add(-1)
}
