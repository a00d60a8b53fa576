package inflight

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBudget(t *testing.T) {
	b := NewBudget(100)
	require.True(t, b.Take(60))
	require.False(t, b.Take(41), "over the limit")
	require.Equal(t, int64(60), b.Used(), "a refused take takes nothing")
	require.True(t, b.Take(40))
	b.Give(100)
	require.Zero(t, b.Used())

	unlimited := NewBudget(0)
	require.True(t, unlimited.Take(1<<40))
	require.Equal(t, int64(1<<40), unlimited.Used())

	var none *Budget
	require.True(t, none.Take(1<<40))
	none.Give(1)
	require.Zero(t, none.Used())
}

func TestBudgetUnderContention(t *testing.T) {
	b := NewBudget(1000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10_000 {
				if b.Take(7) {
					b.Give(7)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, b.Used())
}
