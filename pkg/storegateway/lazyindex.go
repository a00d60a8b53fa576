package storegateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// indexPageSize is the unit in which a block's index is fetched and kept.
const indexPageSize = 32 << 10

// minIndexFetch is the least a miss fetches: a query reads postings and
// series in file order, so the following pages are usually read next.
const minIndexFetch = 128 << 10

// fetchError is what lazyIndex.Range panics with when object storage cannot
// be read: index.Reader's ByteSlice has no error return. Every caller of a
// store-gateway block recovers it (see recoverFetch).
type fetchError struct{ err error }

func (e fetchError) Error() string { return e.err.Error() }

// lazyIndex is a block's index file, read from object storage page by page
// as it is used and kept in a sparse local file of the same layout. Opening
// the reader touches the table of contents, the symbols and the postings
// offset table only: the index header. Postings lists and series come
// later, for the queries that need them.
type lazyIndex struct {
	bkt  objstore.BucketReader
	name string
	size int
	dir  string

	// The symbol table, as the TOC places it. index.Symbols asks for the
	// whole file (Range(0, Len)) and reads within the symbol table only:
	// such a request needs the table's pages, not the whole index.
	symStart, symEnd int
	symReady         atomic.Bool // every page of the symbol table is here

	f       *os.File
	mm      *fileutil.MmapFile
	present []atomic.Uint64 // one bit per page
	mu      sync.Mutex      // serialises fetches
	fetched atomic.Int64    // bytes read from object storage
}

// Local files of a lazyIndex: the pages fetched so far, at their offsets
// in a sparse file as long as the index, and which pages those are.
const (
	sparseIndexFile = "index.sparse"
	indexPagesFile  = "index.pages"
)

// indexReadTimeout bounds one range read of an index.
const indexReadTimeout = time.Minute

// openLazyIndex opens the local copy in dir of the index object name of
// bkt (of the given size), keeping the pages a previous opening fetched.
func openLazyIndex(bkt objstore.BucketReader, name, dir string, size int) (*lazyIndex, error) {
	if size <= 0 {
		return nil, fmt.Errorf("index %s is empty", name)
	}
	pages := (size + indexPageSize - 1) / indexPageSize
	l := &lazyIndex{bkt: bkt, name: name, size: size, dir: dir, present: make([]atomic.Uint64, (pages+63)/64)}
	path := filepath.Join(dir, sparseIndexFile)
	// The page list is trusted only beside the file holding those pages.
	kept := false
	if fi, err := os.Stat(path); err == nil && fi.Size() == int64(size) {
		kept = l.loadPages()
	}
	flags := os.O_CREATE | os.O_RDWR
	if !kept {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, err
	}
	mm, err := fileutil.OpenMmapFileWithSize(path, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	l.f, l.mm = f, mm
	return l, nil
}

// loadPages reads which pages the local file holds; false when unknown.
func (l *lazyIndex) loadPages() bool {
	b, err := os.ReadFile(filepath.Join(l.dir, indexPagesFile))
	if err != nil || len(b) != 8+8*len(l.present) || binary.LittleEndian.Uint64(b) != uint64(l.size) {
		return false
	}
	for i := range l.present {
		l.present[i].Store(binary.LittleEndian.Uint64(b[8+8*i:]))
	}
	return true
}

// savePages records which pages the local file holds, once they are on
// disk.
func (l *lazyIndex) savePages() error {
	if err := l.f.Sync(); err != nil {
		return err
	}
	b := make([]byte, 8+8*len(l.present))
	binary.LittleEndian.PutUint64(b, uint64(l.size))
	for i := range l.present {
		binary.LittleEndian.PutUint64(b[8+8*i:], l.present[i].Load())
	}
	tmp := filepath.Join(l.dir, indexPagesFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return fileutil.Replace(tmp, filepath.Join(l.dir, indexPagesFile))
}

func (l *lazyIndex) Len() int { return l.size }

func (l *lazyIndex) has(page int) bool {
	return l.present[page/64].Load()&(1<<(page%64)) != 0
}

// Range implements index.ByteSlice.
func (l *lazyIndex) Range(start, end int) []byte {
	if start < 0 || end > l.size || start > end {
		panic(fetchError{fmt.Errorf("index %s: range [%d, %d) outside its %d bytes", l.name, start, end, l.size)})
	}
	if start == end {
		return nil
	}
	symbols := false
	if start == 0 && end == l.size && l.symEnd > 0 {
		// A symbol lookup: hot, and its pages stay once fetched.
		if l.symReady.Load() {
			return l.mm.Bytes()
		}
		start, end, symbols = l.symStart, l.symEnd, true
	}
	first, last := start/indexPageSize, (max(end, start+1)-1)/indexPageSize
	for p := first; p <= last; p++ {
		if !l.has(p) {
			if err := l.fetch(p, last); err != nil {
				panic(fetchError{err})
			}
			break
		}
	}
	if symbols {
		l.symReady.Store(true)
		return l.mm.Bytes()
	}
	return l.mm.Bytes()[start:end]
}

// fetch reads the missing pages from first to at least last (and
// minIndexFetch bytes) into the local file.
func (l *lazyIndex) fetch(first, last int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	pages := (l.size + indexPageSize - 1) / indexPageSize
	last = max(last, first+minIndexFetch/indexPageSize-1)
	last = min(last, pages-1)
	for p := first; p <= last; {
		if l.has(p) {
			p++
			continue
		}
		q := p
		for q+1 <= last && !l.has(q+1) {
			q++
		}
		off := p * indexPageSize
		n := min((q+1)*indexPageSize, l.size) - off
		if err := l.read(off, n); err != nil {
			return err
		}
		for i := p; i <= q; i++ {
			l.present[i/64].Or(1 << (i % 64))
		}
		p = q + 1
	}
	return nil
}

func (l *lazyIndex) read(off, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), indexReadTimeout)
	defer cancel()
	rc, err := l.bkt.GetRange(ctx, l.name, int64(off), int64(n))
	if err != nil {
		return fmt.Errorf("read index %s: %w", l.name, err)
	}
	defer rc.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return fmt.Errorf("read index %s at %d: %w", l.name, off, err)
	}
	if _, err := l.f.WriteAt(buf, int64(off)); err != nil {
		return err
	}
	l.fetched.Add(int64(n))
	return nil
}

// Close records the pages fetched, for the next opening, and closes the
// local file.
func (l *lazyIndex) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.savePages(), l.mm.Close(), l.f.Close())
}

// recoverFetch turns a fetchError panic into *err, the error of a call
// whose block could not be read whole; other panics go on.
func recoverFetch(err *error) {
	r := recover()
	if r == nil {
		return
	}
	fe, ok := r.(fetchError)
	if !ok {
		panic(r)
	}
	*err = apierror.New(apierror.Unavailable, apierror.IDStoreConsistency, "store-gateway could not read a block's index from object storage: %v", fe.err)
}
