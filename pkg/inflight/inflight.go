// Package inflight bounds the memory that the requests in flight take in one
// process. Every component that holds a request's bytes (the front door
// reading a signed body, the distributor decoding a push) takes them from
// the one Budget its process makes, before allocating them, and gives them
// back once the request is done: however many connections arrive, their
// bodies together stay under one limit, and a request over it is refused
// (with 503, so that an honest sender retries) before its memory exists.
package inflight

import "sync/atomic"

// Budget is a count of bytes with a limit, safe for concurrent use. A nil
// Budget has no limit and counts nothing.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes; 0 (or less) means no limit,
// though the bytes taken are still counted.
func NewBudget(limit int64) *Budget {
	return &Budget{limit: max(limit, 0)}
}

// Take takes n bytes from the budget. It returns false, taking nothing, when
// that would go over the limit.
func (b *Budget) Take(n int) bool {
	if b == nil || n <= 0 {
		return true
	}
	total := b.used.Add(int64(n))
	if b.limit > 0 && total > b.limit {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

// Give returns n bytes that Take took.
func (b *Budget) Give(n int) {
	if b == nil || n <= 0 {
		return
	}
	b.used.Add(-int64(n))
}

// Used is how many bytes are taken.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit is the budget's limit; 0: none.
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}
