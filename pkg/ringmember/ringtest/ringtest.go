// Package ringtest holds what tests of ring members need: an in-memory
// key-value store, one whose readers never see a change (a member waiting
// to see itself in the ring never does, and its start fails once its
// context ends), one whose reads fail (a ring client's start fails at
// once, while the member's lifecycler, which only writes, joins) and one
// that refuses to make an instance ACTIVE (a lifecycler joins, then cannot
// turn ACTIVE).
package ringtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
)

// NewKV returns an in-memory key-value store of ring descriptions, closed
// when the test ends.
func NewKV(t testing.TB) kv.Client {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	return store
}

// Blind wraps a store so that its readers see nothing: Get finds no value,
// and watches report no change until their context ends. Writes (a
// lifecycler's CAS) still reach the store.
func Blind(c kv.Client) kv.Client { return blind{c} }

type blind struct{ kv.Client }

func (blind) Get(context.Context, string) (any, error) { return nil, nil }

func (blind) WatchKey(ctx context.Context, _ string, _ func(any) bool) { <-ctx.Done() }

func (blind) WatchPrefix(ctx context.Context, _ string, _ func(string, any) bool) { <-ctx.Done() }

// Unreadable wraps a store so that Get fails, after a tenth of a second:
// a ring client cannot start on it, and fails once a lifecycler starting
// beside it has joined the ring. Writes and watches reach the store.
func Unreadable(c kv.Client) kv.Client { return unreadable{c} }

type unreadable struct{ kv.Client }

func (unreadable) Get(ctx context.Context, _ string) (any, error) {
	select {
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
	return nil, errors.New("the key-value store cannot be read")
}

// RefuseActive wraps a store so that it refuses the writes that would make
// the instance id ACTIVE: its lifecycler registers (and heartbeats), cannot
// turn ACTIVE, and leaves the ring when it is stopped.
func RefuseActive(c kv.Client, id string) kv.Client { return refuseActive{c, id} }

type refuseActive struct {
	kv.Client
	id string
}

func (r refuseActive) CAS(ctx context.Context, key string, f func(in any) (out any, retry bool, err error)) error {
	return r.Client.CAS(ctx, key, func(in any) (any, bool, error) {
		out, retry, err := f(in)
		if desc, ok := out.(*ring.Desc); ok && err == nil {
			if inst, present := desc.Ingesters[r.id]; present && inst.State == ring.ACTIVE {
				return nil, false, errors.New("the key-value store refuses to make " + r.id + " ACTIVE")
			}
		}
		return out, retry, err
	})
}

// Instances returns the IDs of the instances the store's ring at key holds,
// with their states.
func Instances(t testing.TB, c kv.Client, key string) map[string]ring.InstanceState {
	t.Helper()
	v, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("read ring %s: %v", key, err)
	}
	out := map[string]ring.InstanceState{}
	if desc, ok := v.(*ring.Desc); ok && desc != nil {
		for id, inst := range desc.Ingesters {
			out[id] = inst.State
		}
	}
	return out
}
