package policy

import (
	"math"
	"sync"
	"time"
)

// Limiter is a token bucket per participant: each may make Rate requests per second on
// average and Burst at once. A participant over its limit is told how long to wait (HTTP
// 429 with Retry-After), so that one misbehaving client cannot starve the others of a
// node. Limits are per node: a client spreading its calls over N nodes gets N times the
// rate, which bounds each node's load, which is what the limit protects.
type Limiter struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxIdleBuckets bounds the map: a full bucket is the same as no bucket, so full ones are
// dropped when the map grows past it.
const maxIdleBuckets = 4096

// NewLimiter returns a limiter of rate requests per second and burst; now is the clock
// (time.Now outside tests). A rate of zero or less disables limiting.
func NewLimiter(rate float64, burst int, now func() time.Time) *Limiter {
	if burst < 1 {
		burst = 1
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// Allow takes one token from key's bucket. When the bucket is empty it returns false and
// how long until a token is due.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, l.wait(b)
}

// Exhausted reports, without taking a token, whether key's bucket is empty, and how long
// until a token is due. A key never seen is not exhausted.
func (l *Limiter) Exhausted(key string) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.buckets[key]; !ok {
		return false, 0
	}
	b := l.refill(key)
	if b.tokens >= 1 {
		return false, 0
	}
	return true, l.wait(b)
}

func (l *Limiter) wait(b *bucket) time.Duration {
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// refill returns key's bucket (a full one if it had none), topped up for the time passed.
func (l *Limiter) refill(key string) *bucket {
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxIdleBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
	}
	b.last = now
	return b
}

// prune drops the full buckets (a full bucket is the same as none) and, if the keys still
// exceed maxBuckets (an attacker cycling through addresses), arbitrary others: forgetting
// a key only gives it its burst again.
func (l *Limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxBuckets {
			break
		}
		delete(l.buckets, k)
	}
}

// maxBuckets bounds the keys a limiter remembers.
const maxBuckets = 4 * maxIdleBuckets
