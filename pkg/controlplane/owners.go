package controlplane

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"

	"github.com/grafana/dskit/httpgrpc"
	httpgrpcserver "github.com/grafana/dskit/httpgrpc/server"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Owners tells which replica writes an account's documents: object storage
// has no transactions, so quotas, client tokens and indexes hold only with
// one writer per account.
type Owners interface {
	// Owner returns nil when this replica writes the account's documents,
	// and otherwise a handler that hands the request to the replica that
	// does.
	Owner(account string) (http.Handler, error)
}

const (
	// RingName names the control-plane ring in metrics and logs.
	RingName = "controlplane"
	// RingKey is the key of the control-plane ring in the KV store.
	RingKey = "controlplane-ring"
)

// accountHeader carries the caller's account on a request forwarded to the
// account's owner, over the internal gRPC port only: the public port never
// reads it.
const accountHeader = "X-Vigil-Forwarded-Account"

type forwardedKey struct{}

// forwarded tells whether r was handed over by another replica, which found
// this one to be the account's owner.
func forwarded(r *http.Request) bool { return r.Context().Value(forwardedKey{}) != nil }

// RingOwners finds an account's owner on the control-plane ring: the
// account's name is hashed onto it, one owner per account.
type RingOwners struct {
	ring      ring.ReadRing
	self      string // this replica's instance ID
	conns     *ringmember.Conns
	forwarded prometheus.Counter
}

// NewRingOwners returns the owners of accounts on r, where this replica is
// instance self; dial connects to another replica's gRPC address.
func NewRingOwners(r ring.ReadRing, self string, dial func(addr string) (*grpc.ClientConn, error), reg prometheus.Registerer) *RingOwners {
	return &RingOwners{
		ring: r, self: self, conns: ringmember.NewConns(dial),
		forwarded: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "vigil_controlplane_forwarded_requests_total",
			Help: "Control-plane writes handed to the replica owning the caller's account.",
		}),
	}
}

func accountToken(account string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	return h.Sum32()
}

// Owner implements Owners.
func (o *RingOwners) Owner(account string) (http.Handler, error) {
	rs, err := o.ring.Get(accountToken(account), ring.WriteNoExtend, nil, nil, nil)
	if err != nil {
		return nil, apierror.New(apierror.Unavailable, apierror.IDControlPlaneUnavailable,
			"no control-plane replica can take writes for the account now, retry later: %v", err)
	}
	inst := rs.Instances[0]
	if inst.Id == o.self {
		return nil, nil
	}
	conn, err := o.conns.Get(inst.Addr)
	if err != nil {
		return nil, apierror.New(apierror.Unavailable, apierror.IDControlPlaneUnavailable,
			"cannot reach the control-plane replica of the account, retry later: %v", err)
	}
	o.forwarded.Inc()
	return &forwarder{client: httpgrpc.NewHTTPClient(conn), account: account}, nil
}

// Close closes the connections to other replicas.
func (o *RingOwners) Close() error { return o.conns.Close() }

// forwarder hands a control-plane request to the account's owner.
type forwarder struct {
	client  httpgrpc.HTTPClient
	account string
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := httpgrpc.FromHTTPRequest(r)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		apierror.WriteAWS(w, bodyTooLarge())
		return
	}
	if err != nil {
		apierror.WriteAWS(w, fmt.Errorf("forward request: %w", err))
		return
	}
	req.Url = InternalPrefix + req.Url
	req.Headers = append(req.Headers, &httpgrpc.Header{Key: accountHeader, Values: []string{f.account}})
	resp, err := f.client.Handle(r.Context(), req)
	if err != nil {
		// The owner's 5xx answers come back as errors carrying them.
		var ok bool
		if resp, ok = httpgrpc.HTTPResponseFromError(err); !ok {
			apierror.WriteAWS(w, apierror.New(apierror.Unavailable, apierror.IDControlPlaneUnavailable,
				"the control-plane replica of the account did not answer, retry: %v", err))
			return
		}
	}
	if err := httpgrpc.WriteResponse(w, resp); err != nil {
		apierror.WriteAWS(w, err)
	}
}

// InternalPrefix is the path prefix of the requests forwarded to an
// account's owner.
const InternalPrefix = "/internal/controlplane"

// Internal returns the handler of the requests other replicas forward to
// this one, to be mounted at InternalPrefix; operations dispatches them
// (without authenticating again: the replica that forwarded did). It serves
// only requests that arrived on the internal gRPC port (dskit's httpgrpc
// service), where the forwarding replica names the caller's account; on the
// public port the path does not exist.
func (h *Handler) Internal(operations http.Handler) http.Handler {
	inner := http.StripPrefix(InternalPrefix, operations)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpgrpcserver.IsHandledByHttpgrpcServer(r.Context()) {
			http.NotFound(w, r)
			return
		}
		account := r.Header.Get(accountHeader)
		if account == "" {
			apierror.WriteAWS(w, apierror.New(apierror.BadData, apierror.IDMissingTenant, "forwarded request without an account"))
			return
		}
		ctx := context.WithValue(tenant.WithAccount(r.Context(), account), forwardedKey{}, true)
		inner.ServeHTTP(w, r.WithContext(ctx))
	})
}

// owner returns nil when this replica handles the write itself, or the
// handler that forwards it. A request forwarded here is always handled here.
func (h *Handler) owner(r *http.Request, account string) (http.Handler, error) {
	if h.owners == nil || forwarded(r) {
		return nil, nil
	}
	return h.owners.Owner(account)
}
