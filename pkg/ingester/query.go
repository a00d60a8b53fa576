package ingester

import (
	"context"

	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Querier returns a Prometheus storage.Querier over the TSDB of the workspace
// in ctx for the inclusive range [mint, maxt]. The caller must Close it; until
// then the TSDB stays open. A workspace with no data here gets an empty querier.
func (i *Ingester) Querier(ctx context.Context, mint, maxt int64) (storage.Querier, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	u, err := i.acquire(ctx, id, false)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return storage.NoopQuerier(), nil
	}
	q, err := u.db.Querier(mint, maxt)
	if err != nil {
		u.release()
		return nil, err
	}
	return &heldQuerier{Querier: q, u: u}, nil
}

// heldQuerier keeps its workspace's TSDB open until it is closed.
type heldQuerier struct {
	storage.Querier
	u *userDB
}

func (q *heldQuerier) Close() error {
	err := q.Querier.Close()
	q.u.release()
	return err
}
