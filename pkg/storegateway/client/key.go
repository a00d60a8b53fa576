package client

import (
	"hash/fnv"

	"github.com/oklog/ulid/v2"
)

// BlockKey is where a workspace's block falls in the store-gateway ring.
func BlockKey(workspace string, block ulid.ULID) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(workspace))
	_, _ = h.Write([]byte{'/'})
	_, _ = h.Write(block[:])
	return h.Sum32()
}
