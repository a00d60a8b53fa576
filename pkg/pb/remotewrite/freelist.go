package remotewrite

// FreeList keeps up to a fixed number of request buffers for reuse. Unlike
// a sync.Pool, which drops what it holds at every garbage collection, it
// keeps them across collections: a decoded request's slices are megabytes
// that would otherwise be allocated again, and grown element by element,
// after every collection.
type FreeList[T any] struct {
	free    chan T
	newItem func() T
}

// NewFreeList returns a free list of at most size items, made by newItem
// when none is free.
func NewFreeList[T any](size int, newItem func() T) *FreeList[T] {
	return &FreeList[T]{free: make(chan T, size), newItem: newItem}
}

// Get returns a free item, or a new one.
func (l *FreeList[T]) Get() T {
	select {
	case it := <-l.free:
		return it
	default:
		return l.newItem()
	}
}

// Put returns an item for reuse; it is dropped when the list is full.
func (l *FreeList[T]) Put(it T) {
	select {
	case l.free <- it:
	default:
	}
}
