package harness

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsContiguous(t *testing.T) {
	for i := 1; i < numBuckets; i++ {
		_, prevHi := bucketRange(i - 1)
		lo, hi := bucketRange(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d = [%d,%d], previous ends at %d", i, lo, hi, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d: bucketOf(%d)=%d bucketOf(%d)=%d", i, lo, bucketOf(lo), hi, bucketOf(hi))
		}
	}
	if got := bucketOf(math.MaxInt64); got != numBuckets-1 {
		t.Errorf("bucketOf(MaxInt64) = %d, want %d", got, numBuckets-1)
	}
}

func TestQuantileAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []string{"uniform", "lognormal"} {
		var h Histogram
		vals := make([]int64, 100000)
		for i := range vals {
			switch dist {
			case "uniform":
				vals[i] = r.Int64N(10_000_000)
			default:
				vals[i] = int64(math.Exp(r.NormFloat64()*1.5 + 11))
			}
			h.Record(time.Duration(vals[i]))
		}
		slices.Sort(vals)
		for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
			rank := int(math.Ceil(q * float64(len(vals))))
			want := vals[max(rank-1, 0)]
			got := int64(h.Quantile(q))
			if diff := math.Abs(float64(got - want)); diff > float64(want)/64+1 {
				t.Errorf("%s q=%v: got %d, exact %d (error %.2f%%)", dist, q, got, want, 100*diff/float64(want))
			}
		}
		if h.Max() != time.Duration(vals[len(vals)-1]) || h.Min() != time.Duration(vals[0]) {
			t.Errorf("%s: min/max %v/%v, want %d/%d", dist, h.Min(), h.Max(), vals[0], vals[len(vals)-1])
		}
	}
}

func TestMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i * 1000)
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	if a.Count() != all.Count() || a.Quantile(0.99) != all.Quantile(0.99) || a.Max() != all.Max() || a.Min() != all.Min() {
		t.Errorf("merged %d/%v/%v, want %d/%v/%v", a.Count(), a.Quantile(0.99), a.Max(), all.Count(), all.Quantile(0.99), all.Max())
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Latency() != nil {
		t.Errorf("empty histogram: quantile %v latency %v", empty.Quantile(0.5), empty.Latency())
	}
	empty.Record(-5)
	if empty.Max() != 0 || empty.Count() != 1 {
		t.Errorf("negative duration recorded as %v", empty.Max())
	}
}

func TestRecordAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	var h Histogram
	n := testing.AllocsPerRun(1000, func() { h.Record(1234567) })
	if n != 0 {
		t.Errorf("Record allocates %v times, want 0", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.SetBytes(8)
	v := time.Duration(1)
	for b.Loop() {
		h.Record(v)
		v = v*3 + 1
		if v > time.Hour {
			v = 1
		}
	}
}
