package ingester

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
)

// LabelSetLimit caps the in-memory series carrying a label set; the entry
// with no labels caps the series matching no other entry (AMP's
// limitsPerLabelSet default bucket).
type LabelSetLimit struct {
	Labels    map[string]string
	MaxSeries int64
}

// LabelSetLimits gives a workspace's label-set limits (its configuration).
type LabelSetLimits interface {
	LabelSetLimits(ctx context.Context, workspace string) ([]LabelSetLimit, error)
}

// labelSetRefresh is how often open TSDBs read their workspace's limits
// again.
const labelSetRefresh = 15 * time.Second

// SetLabelSetLimits makes the ingester enforce the workspaces' label-set
// series limits from src; call it before the ingester starts.
func (i *Ingester) SetLabelSetLimits(src LabelSetLimits) { i.labelSets = src }

// errLabelSetLimit marks a series refused by a label-set limit.
type errLabelSetLimit struct {
	set   string
	limit int64
}

func (e *errLabelSetLimit) Error() string {
	return fmt.Sprintf("per-labelset series limit of %d exceeded for label set %s", e.limit, e.set)
}

type labelSetEntry struct {
	match labels.Labels // empty: the default bucket
	max   int64
	n     int64
}

// labelSetLimiter counts the series of each limited label set and refuses
// new series past a limit. Counts are exact from the moment the limiter is
// installed, up to the series created or deleted while it counted the head.
type labelSetLimiter struct {
	key     string // identifies the configuration it enforces
	mu      sync.Mutex
	entries []*labelSetEntry
	dflt    *labelSetEntry
}

func limitsKey(limits []LabelSetLimit) string {
	parts := make([]string, 0, len(limits))
	for _, l := range limits {
		parts = append(parts, fmt.Sprintf("%s=%d", labels.FromMap(l.Labels).String(), l.MaxSeries))
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}

func newLabelSetLimiter(limits []LabelSetLimit) *labelSetLimiter {
	l := &labelSetLimiter{key: limitsKey(limits)}
	for _, lim := range limits {
		// AMP: maxSeries 0 (or none) enforces no limit. Such an entry still
		// claims its series, which then do not count in the default bucket.
		e := &labelSetEntry{match: labels.FromMap(lim.Labels), max: lim.MaxSeries}
		switch {
		case !e.match.IsEmpty():
			l.entries = append(l.entries, e)
		case e.max > 0:
			l.dflt = e
		}
	}
	return l
}

func contains(lset, match labels.Labels) bool {
	ok := true
	match.Range(func(m labels.Label) {
		if ok && lset.Get(m.Name) != m.Value {
			ok = false
		}
	})
	return ok
}

// visit calls f with every entry lset counts in: the entries it matches,
// or the default bucket when it matches none.
func (l *labelSetLimiter) visit(lset labels.Labels, f func(*labelSetEntry) bool) {
	matched := false
	for _, e := range l.entries {
		if contains(lset, e.match) {
			matched = true
			if !f(e) {
				return
			}
		}
	}
	if !matched && l.dflt != nil {
		f(l.dflt)
	}
}

func (l *labelSetLimiter) check(lset labels.Labels) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	l.visit(lset, func(e *labelSetEntry) bool {
		if e.max > 0 && e.n >= e.max {
			err = &errLabelSetLimit{set: e.match.String(), limit: e.max}
			return false
		}
		return true
	})
	return err
}

func (l *labelSetLimiter) add(lset labels.Labels, delta int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.visit(lset, func(e *labelSetEntry) bool {
		e.n += delta
		return true
	})
}

// count adds the series of a head index to the entries.
func (l *labelSetLimiter) count(ix tsdb.IndexReader) error {
	name, value := index.AllPostingsKey()
	p, err := ix.Postings(context.Background(), name, value)
	if err != nil {
		return err
	}
	var b labels.ScratchBuilder
	for p.Next() {
		if err := ix.Series(p.At(), &b, nil); err != nil {
			continue // deleted meanwhile
		}
		l.add(b.Labels(), 1)
	}
	return p.Err()
}

// refreshSettings gives each open workspace's TSDB its current settings.
func (i *Ingester) refreshSettings(ctx context.Context) {
	for id, u := range i.openDBs() {
		i.applySettings(ctx, id, u)
	}
}

// applySettings gives a workspace's TSDB its series limits, out-of-order
// window and label-set limits. Opening a TSDB calls it before the first
// push.
func (i *Ingester) applySettings(ctx context.Context, id string, u *userDB) {
	i.attachSeriesLimits(id, u)
	i.applyOutOfOrder(ctx, id, u)
	i.applyLabelSets(ctx, id, u)
}

// applyLabelSets reads a workspace's limits and, when they changed,
// installs a limiter counting the head's series. Limits that cannot be
// read leave the current ones in force.
func (i *Ingester) applyLabelSets(ctx context.Context, id string, u *userDB) {
	if i.labelSets == nil {
		return
	}
	limits, err := i.labelSets.LabelSetLimits(ctx, id)
	if err != nil {
		level.Warn(i.logger).Log("msg", "cannot read the workspace's label-set limits; the current ones stay", "workspace", id, "err", err)
		return
	}
	cur := u.series.labelSets.Load()
	if !slices.ContainsFunc(limits, func(l LabelSetLimit) bool { return l.MaxSeries > 0 }) {
		if cur != nil {
			u.series.labelSets.Store(nil)
		}
		return
	}
	if cur != nil && cur.key == limitsKey(limits) {
		return
	}
	l := newLabelSetLimiter(limits)
	// Installed first, so that series created from now on count; the head
	// is counted after, so a series created meanwhile may count twice
	// until the limits next change.
	u.series.labelSets.Store(l)
	ix, err := u.db.Head().Index()
	if err == nil {
		err = l.count(ix)
		_ = ix.Close()
	}
	if err != nil {
		level.Warn(i.logger).Log("msg", "cannot count the head's series for the label-set limits", "workspace", id, "err", err)
	}
}
