package slots

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestKeyed: a key at its bound waits, and gives up when its wait ends or
// its request is cancelled, while another key takes a slot at once; a
// released slot goes to the next request; idle keys are forgotten.
func TestKeyed(t *testing.T) {
	s := NewKeyed()
	ctx := context.Background()
	never := make(chan time.Time)
	r1, err := s.Acquire(ctx, "heavy", 2, never)
	require.NoError(t, err)
	r2, err := s.Acquire(ctx, "heavy", 2, nil)
	require.NoError(t, err)

	fired := make(chan time.Time, 1)
	fired <- time.Now()
	_, err = s.Acquire(ctx, "heavy", 2, fired)
	require.ErrorIs(t, err, ErrNoneFree)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Acquire(cancelled, "heavy", 2, never)
	require.ErrorIs(t, err, context.Canceled)

	rb, err := s.Acquire(ctx, "light", 2, never)
	require.NoError(t, err, "another key is not held up")
	rb()

	got := make(chan error, 1)
	go func() {
		r, err := s.Acquire(ctx, "heavy", 2, never)
		if err == nil {
			r()
		}
		got <- err
	}()
	r1()
	require.NoError(t, <-got, "a released slot goes to the waiting request")
	r2()
	require.Zero(t, s.Len(), "idle keys are forgotten")

	release, err := s.Acquire(ctx, "any", 0, fired)
	require.NoError(t, err, "no bound")
	release()
}

// TestLimiter: a request takes its key's slot, then one of the process's;
// a key at its bound gives up with ErrNoneFree holding none of the
// process's slots, and a full process with ErrAllTaken; releases free both.
func TestLimiter(t *testing.T) {
	l := NewLimiter(2)
	ctx := context.Background()
	never := make(chan time.Time)
	fired := func() <-chan time.Time {
		c := make(chan time.Time, 1)
		c <- time.Now()
		return c
	}
	a, err := l.Acquire(ctx, "heavy", 1, never)
	require.NoError(t, err)
	_, err = l.Acquire(ctx, "heavy", 1, fired())
	require.ErrorIs(t, err, ErrNoneFree)
	b, err := l.Acquire(ctx, "light", 1, never)
	require.NoError(t, err, "the waiting request held none of the process's slots")
	_, err = l.Acquire(ctx, "third", 1, fired())
	require.ErrorIs(t, err, ErrAllTaken)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = l.Acquire(cancelled, "third", 1, never)
	require.ErrorIs(t, err, context.Canceled)
	a()
	c, err := l.Acquire(ctx, "third", 1, never)
	require.NoError(t, err, "released")
	b()
	c()
	require.Zero(t, l.Keys(), "idle keys are forgotten")
}
