package service

import (
	"sync"
	"time"
)

// RateLimit is a token bucket: Burst requests at once, refilled at one
// every Every. Reports are rare (one per stage of a machine's life), so the
// defaults stop a flood without ever touching a real machine's retries.
type RateLimit struct {
	Burst int
	Every time.Duration
}

// DefaultReportLimit applies per order and per client address.
var DefaultReportLimit = RateLimit{Burst: 10, Every: 6 * time.Second}

// maxBuckets bounds the limiter's memory; when full, buckets that have
// refilled completely (and so carry no information) are dropped first.
const maxBuckets = 10000

type bucket struct {
	tokens float64
	at     time.Time
}

type limiter struct {
	mu      sync.Mutex
	limit   RateLimit
	now     func() time.Time
	buckets map[string]*bucket
}

func newLimiter(l RateLimit, now func() time.Time) *limiter {
	return &limiter{limit: l, now: now, buckets: map[string]*bucket{}}
}

// allow takes one token from every key's bucket, or from none.
func (l *limiter) allow(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	bs := make([]*bucket, len(keys))
	for i, k := range keys {
		b := l.buckets[k]
		if b == nil {
			if len(l.buckets) >= maxBuckets {
				l.prune(now)
			}
			b = &bucket{tokens: float64(l.limit.Burst), at: now}
			l.buckets[k] = b
		}
		l.refill(b, now)
		if b.tokens < 1 {
			return false
		}
		bs[i] = b
	}
	for _, b := range bs {
		b.tokens--
	}
	return true
}

func (l *limiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens += float64(el) / float64(l.limit.Every)
		if b.tokens > float64(l.limit.Burst) {
			b.tokens = float64(l.limit.Burst)
		}
	}
	b.at = now
}

func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= float64(l.limit.Burst) {
			delete(l.buckets, k)
		}
	}
	// Still full: everything is under attack; forget the oldest half
	// rather than grow without bound.
	if len(l.buckets) >= maxBuckets {
		n := 0
		for k := range l.buckets {
			if n >= maxBuckets/2 {
				break
			}
			delete(l.buckets, k)
			n++
		}
	}
}
