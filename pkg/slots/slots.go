// Package slots bounds how many requests a process runs at once, and how
// many of each key (a workspace) below that: one workspace's heavy or slow
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
	release := func() { <-e.ch; done() }
	select {
	case e.ch <- struct{}{}: // a free slot is taken, even if wait has fired
		return release, nil
	default:
	}
	select {
	case e.ch <- struct{}{}:
		return release, nil
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

// ErrAllTaken is Limiter.Acquire's error when no slot of the process freed
// before the wait ended.
var ErrAllTaken = errors.New("no slot of the process free in time")

// Limiter bounds the requests a process runs at once, and below that the
// requests of each key.
type Limiter struct {
	running chan struct{}
	keys    *Keyed
}

// NewLimiter returns a limiter of n requests at once.
func NewLimiter(n int) *Limiter {
	return &Limiter{running: make(chan struct{}, n), keys: NewKeyed()}
}

// Acquire takes one of the key's keyLimit slots (0: no bound), then one of
// the process's, waiting for each until wait fires (ErrNoneFree for the
// key's, ErrAllTaken for the process's) or ctx ends (its error). A request
// waiting for its key's slot holds none of the process's. The release
// function it returns gives both back.
func (l *Limiter) Acquire(ctx context.Context, key string, keyLimit int, wait <-chan time.Time) (func(), error) {
	own, err := l.keys.Acquire(ctx, key, keyLimit, wait)
	if err != nil {
		return nil, err
	}
	release := func() { <-l.running; own() }
	select {
	case l.running <- struct{}{}: // a free slot is taken, even if wait has fired
		return release, nil
	default:
	}
	select {
	case l.running <- struct{}{}:
		return release, nil
	case <-wait:
		own()
		return nil, ErrAllTaken
	case <-ctx.Done():
		own()
		return nil, ctx.Err()
	}
}

// Keys is how many keys have requests holding or waiting for their slots.
func (l *Limiter) Keys() int { return l.keys.Len() }
