package distributor

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimits are a workspace's ingestion rate and burst, across all
// distributors.
type RateLimits interface {
	IngestionRate(workspace string) float64
	IngestionBurstSize(workspace string) int
}

// rateLimiter keeps a token bucket per workspace holding this
// distributor's share of the workspace's ingestion rate and burst: both
// divided by the healthy distributors, so that together they allow the
// workspace's limit whichever of them its requests reach (a load balancer
// spreads them).
type rateLimiter struct {
	limits  RateLimits
	members Members // nil: this distributor alone

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newRateLimiter(limits RateLimits, members Members) *rateLimiter {
	return &rateLimiter{limits: limits, members: members, buckets: map[string]*rate.Limiter{}}
}

// share is the part of a workspace's limits this distributor enforces.
func (r *rateLimiter) share(workspace string) (limit float64, burst int) {
	limit, burst = r.limits.IngestionRate(workspace), r.limits.IngestionBurstSize(workspace)
	if r.members != nil {
		if n := r.members.HealthyDistributors(); n > 1 {
			limit /= float64(n)
			burst = max(burst/n, 1)
		}
	}
	return limit, burst
}

// allow takes n tokens from the workspace's bucket at now, all or none. It
// returns the rate this distributor enforces.
func (r *rateLimiter) allow(workspace string, now time.Time, n int) (bool, float64) {
	limit, burst := r.share(workspace)
	if limit <= 0 {
		return true, 0
	}
	r.mu.Lock()
	b := r.buckets[workspace]
	if b == nil {
		// A new bucket starts full.
		b = rate.NewLimiter(rate.Limit(limit), burst)
		r.buckets[workspace] = b
	}
	r.mu.Unlock()
	if b.Limit() != rate.Limit(limit) {
		b.SetLimitAt(now, rate.Limit(limit))
	}
	if b.Burst() != burst {
		b.SetBurstAt(now, burst)
	}
	return b.AllowN(now, n), limit
}

// forget drops a workspace's bucket.
func (r *rateLimiter) forget(workspace string) {
	r.mu.Lock()
	delete(r.buckets, workspace)
	r.mu.Unlock()
}
