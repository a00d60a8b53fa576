package ringmember

import (
	"errors"
	"sync"

	"github.com/grafana/dskit/grpcclient"
	"google.golang.org/grpc"
)

// Conns keeps one gRPC connection per address of the ring members a
// component calls, dialled on first use.
type Conns struct {
	dial func(addr string) (*grpc.ClientConn, error)

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewConns returns connections made by dial.
func NewConns(dial func(addr string) (*grpc.ClientConn, error)) *Conns {
	return &Conns{dial: dial, conns: map[string]*grpc.ClientConn{}}
}

// Get returns the connection to addr.
func (c *Conns) Get(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn, ok := c.conns[addr]; ok {
		return conn, nil
	}
	conn, err := c.dial(addr)
	if err != nil {
		return nil, err
	}
	c.conns[addr] = conn
	return conn, nil
}

// Close closes every connection; a later Get dials again.
func (c *Conns) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for addr, conn := range c.conns {
		errs = append(errs, conn.Close())
		delete(c.conns, addr)
	}
	return errors.Join(errs...)
}

// Dialer returns how a component dials the ring members it calls, with its
// gRPC client settings.
func Dialer(c grpcclient.Config) (func(addr string) (*grpc.ClientConn, error), error) {
	opts, err := c.DialOption(nil, nil, nil)
	if err != nil {
		return nil, err
	}
	return func(addr string) (*grpc.ClientConn, error) { return grpc.NewClient(addr, opts...) }, nil
}
