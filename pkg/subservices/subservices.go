// Package subservices runs the services a component depends on inside its
// own lifecycle. dskit calls a service's stopping function only after its
// starting function succeeded: a component whose start fails halfway must
// undo what it started itself, or its lifecycler keeps heartbeating in the
// ring and its pools keep dialling. Group and UndoFailedStart are that undo,
// written once for every component.
package subservices

import (
	"context"
	"errors"
	"fmt"

	"github.com/grafana/dskit/services"
)

// Group is a component's sub-services: started together, stopped together,
// and watched while they run.
type Group struct {
	svcs    []services.Service
	manager *services.Manager
	failed  chan error
}

// NewGroup returns a group of svcs, none started.
func NewGroup(svcs ...services.Service) *Group {
	return &Group{svcs: svcs}
}

// Start starts every sub-service and waits until all run. When one fails
// to start, or ctx ends first, it stops every one of them and waits for
// them before it returns the error: nothing is left running.
func (g *Group) Start(ctx context.Context) error {
	m, err := services.NewManager(g.svcs...)
	if err != nil {
		return err
	}
	g.manager = m
	g.failed = make(chan error, 1)
	// The listener never blocks (dskit's FailureWatcher does, and then
	// deadlocks its Close): the first failure is kept, later ones dropped.
	m.AddListener(services.NewManagerListener(nil, nil, func(s services.Service) {
		select {
		case g.failed <- fmt.Errorf("%s failed: %w", services.DescribeService(s), s.FailureCase()):
		default:
		}
	}))
	if err := services.StartManagerAndAwaitHealthy(ctx, m); err != nil {
		var causes []error
		for _, s := range g.svcs {
			if f := s.FailureCase(); f != nil {
				causes = append(causes, fmt.Errorf("%s: %w", services.DescribeService(s), f))
			}
		}
		if stopErr := g.Stop(); stopErr != nil {
			causes = append(causes, fmt.Errorf("stop the sub-services started: %w", stopErr))
		}
		if len(causes) == 0 {
			return err
		}
		return errors.Join(causes...)
	}
	return nil
}

// Failed delivers the first failure of a sub-service once they run. Before
// Start it is nil, which a select never picks.
func (g *Group) Failed() <-chan error { return g.failed }

// Stop stops every sub-service and waits until they have. It does nothing
// for a group that was never started, and may be called again.
func (g *Group) Stop() error {
	if g.manager == nil {
		return nil
	}
	return services.StopManagerAndAwaitStopped(context.Background(), g.manager)
}

// Service runs svcs as one service: started together (none left running
// when one fails to start), failed when any fails, stopped together.
func Service(svcs ...services.Service) services.Service {
	g := NewGroup(svcs...)
	return services.NewBasicService(g.Start, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case err := <-g.Failed():
			return err
		}
	}, func(error) error { return g.Stop() })
}

// UndoFailedStart returns starting made to run stopping when it fails, so
// that a component's stopping (which must cope with a start cut short)
// undoes the part that did start.
func UndoFailedStart(starting services.StartingFn, stopping services.StoppingFn) services.StartingFn {
	return func(ctx context.Context) error {
		err := starting(ctx)
		if err == nil {
			return nil
		}
		if stopErr := stopping(err); stopErr != nil {
			return errors.Join(err, fmt.Errorf("undo the failed start: %w", stopErr))
		}
		return err
	}
}
