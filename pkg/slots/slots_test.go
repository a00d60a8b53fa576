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
