package harness

import (
	"math"
	"math/bits"
	"time"
)

// Histogram bucket layout: values below 2*subBuckets are counted exactly;
// above, each power of two is split into subBuckets linear buckets, so a
// bucket's width is at most 1/subBuckets of its lower bound (1.6 % error).
const (
	subBucketBits = 6
	subBuckets    = 1 << subBucketBits // 64
	// numBuckets covers every non-negative int64: the largest shift is
	// 62-subBucketBits, whose top bucket index is shift*subBuckets + 2*subBuckets-1.
	numBuckets = (62-subBucketBits)*subBuckets + 2*subBuckets
)

// Histogram records non-negative durations in log-linear buckets (an
// HDR-histogram without the dependency): recording is O(1) and never
// allocates, and quantiles are accurate to 1/64 of the value.
//
// The zero value is ready to use. A Histogram is not safe for concurrent
// use: give each goroutine its own and [Histogram.Merge] them at the end.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    float64 // nanoseconds
	min    int64
	max    int64
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBucketBits
	return shift*subBuckets + int(v>>uint(shift))
}

// bucketRange returns the smallest and largest value that map to bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*subBuckets {
		return int64(i), int64(i)
	}
	shift := i/subBuckets - 1
	sub := int64(i - shift*subBuckets)
	lo = sub << uint(shift)
	return lo, lo + (int64(1) << uint(shift)) - 1
}

// Record adds one duration. Negative durations (clock steps, or an event
// seen before its confirmation was processed) are counted as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest recorded value, exactly (0 if empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min returns the smallest recorded value, exactly (0 if empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean returns the exact mean of the recorded values (0 if empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Quantile returns the value below or at which a fraction q (0..1) of the
// recorded values lie, using the nearest-rank definition. The result is the
// middle of the bucket that holds that rank, clamped to the exact minimum
// and maximum, so its error is at most half a bucket (0.8 %). It returns 0
// if nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// Latency summarises h as the JSON latency block, in microseconds.
func (h *Histogram) Latency() *Latency {
	if h.n == 0 {
		return nil
	}
	us := func(d time.Duration) float64 { return math.Round(float64(d)/1e1) / 1e2 }
	return &Latency{
		Count: h.n,
		P50:   us(h.Quantile(0.50)),
		P99:   us(h.Quantile(0.99)),
		P999:  us(h.Quantile(0.999)),
		Max:   us(h.Max()),
		Mean:  us(h.Mean()),
	}
}
