package distributor

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/memberlist"
)

// haCodecID names the HA tracker's values in the key-value store. Peers
// decode a value with the codec of this ID: it must never change.
const haCodecID = "vigil-ha-tracker"

// replicaDesc is the value stored under the key of one HA cluster: which
// replica is elected and when it was last heard from.
//
// Values form a join-semilattice so that gossiping stores converge whatever
// the order in which they see the updates (see join). Times are Unix
// milliseconds as written by the distributor that wrote them.
type replicaDesc struct {
	// Replica is the elected replica; "" in a value never written.
	Replica string `json:"replica"`
	// ElectedAt is when Replica was elected. A later election wins, so a
	// distributor electing a replica stamps it after the election it replaces.
	ElectedAt int64 `json:"elected_at"`
	// ReceivedAt is when a sample of Replica was last accepted, as last
	// written to the store: distributors write it again only every
	// -distributor.ha-tracker.update-timeout.
	ReceivedAt int64 `json:"received_at"`
	// DeletedAt marks the cluster deleted when it is later than ReceivedAt:
	// a cluster not heard from for haDeleteAfter is marked first, and its key
	// removed only once every distributor has had time to see the mark
	// (deleting a key notifies no watcher).
	DeletedAt int64 `json:"deleted_at,omitempty"`
}

// live tells whether d names an elected replica that is not marked deleted.
func (d replicaDesc) live() bool {
	return d.Replica != "" && d.DeletedAt <= d.ReceivedAt
}

// join is the least upper bound of a and b, the state both converge to.
//
// The elections are ordered by (ElectedAt, Replica): the later election
// wins, and of two elections stamped the same millisecond, the replica whose
// name sorts last. Reports of the same election keep the latest ReceivedAt.
// DeletedAt keeps the latest mark. Each field is a maximum over a total order,
// so join is commutative, associative and idempotent.
func join(a, b replicaDesc) replicaDesc {
	out := a
	if c := cmp.Or(cmp.Compare(b.ElectedAt, a.ElectedAt), cmp.Compare(b.Replica, a.Replica), cmp.Compare(b.ReceivedAt, a.ReceivedAt)); c > 0 {
		out.Replica, out.ElectedAt, out.ReceivedAt = b.Replica, b.ElectedAt, b.ReceivedAt
	}
	out.DeletedAt = max(a.DeletedAt, b.DeletedAt)
	return out
}

// Merge implements memberlist.Mergeable: d becomes join(d, other). The
// change returned is the whole new value, which a peer merges just as well.
// localCAS changes nothing: the value has no parts that could go missing.
func (d *replicaDesc) Merge(other memberlist.Mergeable, _ bool) (memberlist.Mergeable, error) {
	if other == nil {
		return nil, nil
	}
	o, ok := other.(*replicaDesc)
	if !ok {
		return nil, fmt.Errorf("merge HA tracker value: expected %T, got %T", d, other)
	}
	if o == nil {
		return nil, nil
	}
	merged := join(*d, *o)
	if merged == *d {
		return nil, nil
	}
	*d = merged
	return d.Clone(), nil
}

// MergeContent implements memberlist.Mergeable. A change is the whole
// value, so a newer broadcast of the same key electing the same replica
// supersedes an older one.
func (d *replicaDesc) MergeContent() []string {
	return []string{d.Replica}
}

// RemoveTombstones implements memberlist.Mergeable. It keeps the deletion
// mark: memberlist strips tombstones from every value it hands its clients,
// and the trackers must see the mark to stop counting the cluster. The
// tracker's cleanup removes the marked key itself once the mark is old.
func (d *replicaDesc) RemoveTombstones(time.Time) (total, removed int) {
	if d.Replica != "" && !d.live() {
		return 1, 0
	}
	return 0, 0
}

// Clone implements memberlist.Mergeable.
func (d *replicaDesc) Clone() memberlist.Mergeable {
	c := *d
	return &c
}

// haCodec encodes replica descriptions as JSON: a few fields, readable on
// the memberlist status page, and new fields are ignored by older peers.
type haCodec struct{}

// HATrackerCodec returns the codec of the HA tracker's values. It must be
// registered on the memberlist KV (memberlist.KVConfig.Codecs) before the
// store joins its peers, as the ring's codec is.
func HATrackerCodec() codec.Codec { return haCodec{} }

// CodecID implements codec.Codec.
func (haCodec) CodecID() string { return haCodecID }

// Decode implements codec.Codec. Memberlist hands an empty value as the
// snappy encoding of nothing ({0}): both decode to the empty description,
// which merges as no change.
func (haCodec) Decode(b []byte) (any, error) {
	d := &replicaDesc{}
	if len(b) == 0 || (len(b) == 1 && b[0] == 0) {
		return d, nil
	}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("decode HA tracker value: %w", err)
	}
	return d, nil
}

// Encode implements codec.Codec.
func (haCodec) Encode(v any) ([]byte, error) {
	switch d := v.(type) {
	case *replicaDesc:
		return json.Marshal(d)
	case replicaDesc:
		return json.Marshal(&d)
	default:
		return nil, fmt.Errorf("encode HA tracker value: unexpected %T", v)
	}
}

// haKey is the store key of a cluster. Workspace IDs hold no '/'; cluster
// names may.
func haKey(workspace, cluster string) string {
	return haKeyPrefix + workspace + "/" + cluster
}

func parseHAKey(key string) (workspace, cluster string, ok bool) {
	rest, ok := strings.CutPrefix(key, haKeyPrefix)
	if !ok {
		return "", "", false
	}
	workspace, cluster, ok = strings.Cut(rest, "/")
	return workspace, cluster, ok && workspace != "" && cluster != ""
}

// cleanup marks deleted the clusters not heard from for haDeleteAfter, and
// removes the keys of clusters marked for as long. It reads the store
// rather than the cache, which forgets deleted workspaces. A cluster that
// sends again between the read and the removal of its key loses its
// election and elects a replica again with its next request.
func (t *HATracker) cleanup(ctx context.Context, now time.Time) {
	deadline := now.Add(-haDeleteAfter)
	t.forEachKey(ctx, func(workspace, cluster string, d *replicaDesc) {
		switch {
		case d == nil || d.Replica == "":
			t.drop(workspace, cluster)
		case d.live() && t.lastHeard(workspace, cluster, *d).Before(deadline):
			t.markDeleted(ctx, workspace, cluster, deadline, now)
		case !d.live() && time.UnixMilli(d.DeletedAt).Before(deadline):
			if err := t.client.Delete(ctx, haKey(workspace, cluster)); err != nil {
				level.Warn(t.logger).Log("msg", "cannot delete HA cluster", "workspace", workspace, "cluster", cluster, "err", err)
				return
			}
			t.drop(workspace, cluster)
		}
	})
}

// markDeleted marks a cluster deleted unless its elected replica was heard
// from after deadline.
func (t *HATracker) markDeleted(ctx context.Context, workspace, cluster string, deadline, now time.Time) {
	var (
		out   replicaDesc
		wrote bool
	)
	err := t.client.CAS(ctx, haKey(workspace, cluster), func(in any) (any, bool, error) {
		out, wrote = replicaDesc{}, false
		d, ok := in.(*replicaDesc)
		if !ok || d == nil {
			return nil, false, nil
		}
		out = *d
		if !d.live() || !t.lastHeard(workspace, cluster, *d).Before(deadline) {
			return nil, false, nil // heard from since, or marked already
		}
		wrote = true
		out.DeletedAt = max(now.UnixMilli(), out.ReceivedAt+1)
		return out.Clone(), true, nil
	})
	if err != nil {
		level.Warn(t.logger).Log("msg", "cannot mark HA cluster deleted", "workspace", workspace, "cluster", cluster, "err", err)
		return
	}
	if wrote {
		t.metrics.kvWrites.WithLabelValues("mark_deleted").Inc()
	}
	if out.Replica != "" {
		t.observe(workspace, cluster, out, time.Time{})
	}
}

// forEachKey calls f with the value of every key of the tracker in the
// store, nil for a key gone since it was listed.
func (t *HATracker) forEachKey(ctx context.Context, f func(workspace, cluster string, d *replicaDesc)) {
	keys, err := t.client.List(ctx, haKeyPrefix)
	if err != nil {
		level.Warn(t.logger).Log("msg", "cannot list HA clusters", "err", err)
		return
	}
	for _, key := range keys {
		workspace, cluster, ok := parseHAKey(key)
		if !ok {
			continue
		}
		v, err := t.client.Get(ctx, key)
		if err != nil {
			level.Warn(t.logger).Log("msg", "cannot read HA cluster", "key", key, "err", err)
			continue
		}
		d, _ := v.(*replicaDesc)
		f(workspace, cluster, d)
	}
}

// drop forgets a cluster and its metric series.
func (t *HATracker) drop(workspace, cluster string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if byCluster := t.clusters[workspace]; byCluster != nil {
		delete(byCluster, cluster)
		if len(byCluster) == 0 {
			delete(t.clusters, workspace)
		}
	}
	t.metrics.electedChanges.DeleteLabelValues(workspace, cluster)
	t.metrics.electedTimestamp.DeleteLabelValues(workspace, cluster)
	t.metrics.deduplicated.DeleteLabelValues(workspace, cluster)
}
