package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/ring"
)

// The state a workspace's replicas share travels between them over the
// internal gRPC port (dskit's httpgrpc) under InternalPrefix; it is
// snapshotted to object storage under statePrefix.
const statePrefix = "alertmanager/"

// stateObject is where a workspace's state snapshot is kept.
func stateObject(ws string) string { return statePrefix + ws + "/state.json" }

// snapshot is a workspace's state as stored: each kind's full state, in
// Alertmanager's own encoding (what its gossip sends).
type snapshot struct {
	Silences []byte `json:"silences"`
	Nflog    []byte `json:"nflog"`
}

// enqueue hands a change of a workspace's state to the senders; a full
// queue drops it (counted): the next persist and the next start of a
// replica read the whole state again.
func (m *Multitenant) enqueue(ws, key string, b []byte) {
	defer func() { _ = recover() }() // the outbox closed on stopping
	select {
	case m.outbox <- stateChange{workspace: ws, key: key, data: b}:
	default:
		m.sent.WithLabelValues("dropped").Inc()
	}
}

// replicate sends the queued state changes to the other replicas of their
// workspace.
func (m *Multitenant) replicate() {
	for c := range m.outbox {
		replicas, err := Replicas(m.ring, c.workspace)
		if err != nil {
			m.sent.WithLabelValues("failed").Inc()
			continue
		}
		var wg sync.WaitGroup
		for _, inst := range replicas {
			if inst.Id == m.InstanceID() {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_, err := m.callInstance(ctx, inst, http.MethodPost, c.workspace, statePath+c.key, c.data)
				if err != nil {
					m.sent.WithLabelValues("failed").Inc()
					level.Debug(m.logger).Log("msg", "sending a state change to a replica failed", "workspace", c.workspace, "replica", inst.Id, "err", err)
					return
				}
				m.sent.WithLabelValues("ok").Inc()
			}()
		}
		wg.Wait()
	}
}

// callInstance sends one request to an alertmanager's InternalPrefix and
// returns the body of a 2xx answer.
func (m *Multitenant) callInstance(ctx context.Context, inst ring.InstanceDesc, method, ws, path string, body []byte) ([]byte, error) {
	c, err := m.client(inst)
	if err != nil {
		return nil, err
	}
	resp, err := c(ctx, &httpgrpc.HTTPRequest{
		Method: method, Url: InternalPrefix + path, Body: body,
		Headers: []*httpgrpc.Header{{Key: workspaceHeader, Values: []string{ws}}},
	})
	if err != nil {
		if r, ok := httpgrpc.HTTPResponseFromError(err); ok {
			resp = r
		} else {
			return nil, err
		}
	}
	if resp.Code/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.Code, truncate(resp.Body))
	}
	return resp.Body, nil
}

func truncate(b []byte) string {
	if len(b) > 256 {
		b = b[:256]
	}
	return string(b)
}

// restore merges into a new instance the workspace's snapshot in object
// storage and the state its other replicas hold; it gives up on each
// after a while, rather than never notify.
func (m *Multitenant) restore(ctx context.Context, ws string, in *instance) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if snap, err := m.readSnapshot(ctx, ws); err != nil {
		level.Warn(m.logger).Log("msg", "reading the state snapshot failed", "workspace", ws, "err", err)
	} else if snap != nil {
		m.mergeSnapshot(ws, in, snap)
	}
	m.mergePeers(ctx, ws, in)
}

// mergePeers merges the state the workspace's other replicas hold.
func (m *Multitenant) mergePeers(ctx context.Context, ws string, in *instance) {
	replicas, err := Replicas(m.ring, ws)
	if err != nil {
		return
	}
	for _, inst := range replicas {
		if inst.Id == m.InstanceID() {
			continue
		}
		for _, key := range []string{stateSilences, stateNflog} {
			callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			b, err := m.callInstance(callCtx, inst, http.MethodGet, ws, statePath+key, nil)
			cancel()
			if err != nil {
				level.Debug(m.logger).Log("msg", "reading a replica's state failed", "workspace", ws, "replica", inst.Id, "err", err)
				continue
			}
			if err := in.merge(key, b); err != nil {
				level.Warn(m.logger).Log("msg", "merging a replica's state failed", "workspace", ws, "replica", inst.Id, "err", err)
			}
		}
	}
}

func (m *Multitenant) mergeSnapshot(ws string, in *instance, snap *snapshot) {
	for key, b := range map[string][]byte{stateSilences: snap.Silences, stateNflog: snap.Nflog} {
		if len(b) == 0 {
			continue
		}
		if err := in.merge(key, b); err != nil {
			level.Warn(m.logger).Log("msg", "merging the state snapshot failed", "workspace", ws, "state", key, "err", err)
		}
	}
}

func (m *Multitenant) readSnapshot(ctx context.Context, ws string) (*snapshot, error) {
	rc, err := m.bucket.Get(ctx, stateObject(ws))
	if m.bucket.IsObjNotFoundErr(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var snap snapshot
	if err := json.NewDecoder(io.LimitReader(rc, 256<<20)).Decode(&snap); err != nil {
		return nil, fmt.Errorf("decode %s: %w", stateObject(ws), err)
	}
	return &snap, nil
}

// persist writes a workspace's state to object storage, merged with the
// snapshot there: a replica never drops what another wrote.
func (m *Multitenant) persist(ctx context.Context, ws string, in *instance) error {
	if snap, err := m.readSnapshot(ctx, ws); err != nil {
		return err
	} else if snap != nil {
		m.mergeSnapshot(ws, in, snap)
	}
	var snap snapshot
	var err error
	if snap.Silences, err = in.state(stateSilences); err != nil {
		return err
	}
	if snap.Nflog, err = in.state(stateNflog); err != nil {
		return err
	}
	body, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	return m.bucket.Upload(ctx, stateObject(ws), bytes.NewReader(body))
}

// persistDue writes the state of the workspaces this process is the first
// replica of, every persist interval.
func (m *Multitenant) persistDue(ctx context.Context) {
	m.mu.Lock()
	due := map[string]*running{}
	now := time.Now()
	for ws, r := range m.instances {
		if now.Sub(r.persisted) >= m.cfg.PersistInterval && r.peer.Position() == 0 {
			due[ws] = r
			r.persisted = now
		}
	}
	m.mu.Unlock()
	for ws, r := range due {
		if err := m.persist(ctx, ws, r.in); err != nil {
			level.Warn(m.logger).Log("msg", "writing the state to object storage failed", "workspace", ws, "err", err)
		}
	}
}
