package subservices

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// worker runs until stopped, and says whether it was stopped.
func worker() (services.Service, *bool) {
	stopped := new(bool)
	return services.NewBasicService(nil, func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	}, func(error) error { *stopped = true; return nil }), stopped
}

func failing(err error) services.Service {
	return services.NewBasicService(func(context.Context) error {
		time.Sleep(20 * time.Millisecond) // the others are running by now
		return err
	}, nil, nil)
}

func TestGroupStartFailureStopsTheStarted(t *testing.T) {
	leaks := goleak.IgnoreCurrent() // what runs before the test
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	a, aStopped := worker()
	b, bStopped := worker()
	boom := errors.New("boom")
	g := NewGroup(a, failing(boom), b)
	err := g.Start(context.Background())
	require.ErrorIs(t, err, boom)
	require.Equal(t, services.Terminated, a.State())
	require.Equal(t, services.Terminated, b.State())
	require.True(t, *aStopped)
	require.True(t, *bStopped)
	require.NoError(t, g.Stop(), "stopping again does nothing")
}

func TestGroupStartCutShortByItsContext(t *testing.T) {
	leaks := goleak.IgnoreCurrent() // what runs before the test
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	a, _ := worker()
	slow := services.NewBasicService(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.Error(t, NewGroup(a, slow).Start(ctx))
	require.Equal(t, services.Terminated, a.State())
}

func TestGroupReportsAFailureWhileRunning(t *testing.T) {
	leaks := goleak.IgnoreCurrent() // what runs before the test
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	a, _ := worker()
	crash, die := errors.New("crash"), make(chan struct{})
	dies := services.NewBasicService(nil, func(context.Context) error { <-die; return crash }, nil)
	g := NewGroup(a, dies)
	require.NoError(t, g.Start(context.Background()))
	close(die)
	select {
	case err := <-g.Failed():
		require.ErrorIs(t, err, crash)
	case <-time.After(10 * time.Second):
		t.Fatal("no failure reported")
	}
	require.NoError(t, g.Stop())
	require.Nil(t, NewGroup().Failed(), "a group never started reports nothing")
	require.NoError(t, NewGroup().Stop())
}

func TestServiceOfAGroup(t *testing.T) {
	leaks := goleak.IgnoreCurrent() // what runs before the test
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	a, aStopped := worker()
	s := Service(a, failing(errors.New("boom")))
	require.Error(t, services.StartAndAwaitRunning(context.Background(), s))
	require.Equal(t, services.Failed, s.State())
	require.Equal(t, services.Terminated, a.State())
	require.True(t, *aStopped)

	b, bStopped := worker()
	s = Service(b)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), s))
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), s))
	require.True(t, *bStopped)
}

func TestUndoFailedStart(t *testing.T) {
	boom := errors.New("boom")
	undone := false
	start := UndoFailedStart(func(context.Context) error { return boom }, func(failure error) error {
		require.ErrorIs(t, failure, boom)
		undone = true
		return nil
	})
	require.ErrorIs(t, start(context.Background()), boom)
	require.True(t, undone)

	undone = false
	start = UndoFailedStart(func(context.Context) error { return nil }, func(error) error { undone = true; return nil })
	require.NoError(t, start(context.Background()))
	require.False(t, undone, "a start that succeeded is not undone")
}
