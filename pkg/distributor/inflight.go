package distributor

import (
	"sync/atomic"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// inflightPushes counts the push requests a distributor is handling, from
// their arrival until every replica answered. (Their memory comes out of
// the process's budget of request memory, taken by the decoders.)
type inflightPushes struct {
	limits   InstanceLimits
	requests atomic.Int64
}

const errMaxInflightRequests = "the write request has been rejected because the distributor exceeded the allowed number of inflight push requests (limit: %d, -distributor.instance-limits.max-inflight-push-requests); retry later"

// ticket is one request's place in the in-flight count.
type ticket struct {
	f        *inflightPushes
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

// done counts the request out. Only its first call counts.
func (t *ticket) done() {
	if t.finished.CompareAndSwap(false, true) {
		t.f.requests.Add(-1)
	}
}
