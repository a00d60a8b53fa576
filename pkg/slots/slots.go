// Package slots bounds how many requests of each key (a workspace) run at
// once, below a process's own bound: one workspace's heavy or slow
// requests leave the process's slots to the others. A request waits for
// its key's slot before it takes one of the process's, so a request
// waiting for its key holds none of them.
package slots

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNoneFree is Acquire's error when no slot of the key freed before its
// wait ended.
var ErrNoneFree = errors.New("no slot free in time")

// Keyed holds each key's slots while requests of the key hold or wait for
// them; an idle key is forgotten.
type Keyed struct {
	mu   sync.Mutex
	keys map[string]*keySlots
}

type keySlots struct {
	ch    chan struct{}
	users int // requests holding or waiting for a slot
}

// NewKeyed returns slots with no key held.
func NewKeyed() *Keyed { return &Keyed{keys: map[string]*keySlots{}} }

// Acquire takes one of the key's limit slots (limit 0: no bound), waiting
// until wait fires (ErrNoneFree; nil: no such bound) or ctx ends (its
// error). The release function it returns gives the slot back.
func (k *Keyed) Acquire(ctx context.Context, key string, limit int, wait <-chan time.Time) (func(), error) {
	if limit <= 0 {
		return func() {}, nil
	}
	k.mu.Lock()
	e := k.keys[key]
	if e == nil || (e.users == 0 && cap(e.ch) != limit) {
		e = &keySlots{ch: make(chan struct{}, limit)}
		k.keys[key] = e
	}
	e.users++
	k.mu.Unlock()
	done := func() {
		k.mu.Lock()
		if e.users--; e.users == 0 && k.keys[key] == e {
			delete(k.keys, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; done() }, nil
	case <-wait:
		done()
		return nil, ErrNoneFree
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// Len is how many keys have requests holding or waiting for their slots.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.keys)
}
