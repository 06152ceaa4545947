package kafka

import (
	"math/rand"
	"strings"
	"testing"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func committable(p *PartitionOffsets) int64 {
	o, ok := p.Committable()
	if !ok {
		return -1
	}
	return o
}

func TestCommitWaitsForEveryEarlierRecord(t *testing.T) {
	p := NewPartitionOffsets()
	for o := int64(10); o < 15; o++ {
		must(t, p.Start(o))
	}
	must(t, p.Finish(12))
	must(t, p.Finish(11))
	if c := committable(p); c != -1 {
		t.Fatalf("committable %d while 10 runs", c)
	}
	must(t, p.Finish(10))
	if c := committable(p); c != 13 {
		t.Fatalf("committable %d, want 13", c)
	}
	p.Committed(13)
	must(t, p.Finish(14))
	if c := committable(p); c != -1 || p.InFlight() != 1 {
		t.Fatalf("committable %d in flight %d, want none and 1", c, p.InFlight())
	}
	must(t, p.Finish(13))
	if c := committable(p); c != 15 {
		t.Fatalf("committable %d, want 15", c)
	}
}

func TestGapsAndMisuse(t *testing.T) {
	p := NewPartitionOffsets()
	for _, o := range []int64{3, 7, 8, 20} {
		must(t, p.Start(o))
	}
	must(t, p.Finish(7))
	must(t, p.Finish(3))
	if c := committable(p); c != 8 {
		t.Fatalf("committable %d, want 8", c)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{p.Start(20), "offsets must increase"},
		{p.Finish(9), "not in flight"},
		{p.Finish(7), "not in flight"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want %q", tc.err, tc.want)
		}
	}
	must(t, p.Finish(20))
	must(t, p.Finish(8))
	if c := committable(p); c != 21 {
		t.Fatalf("committable %d, want 21", c)
	}
	if err := p.Start(5); err == nil || !strings.Contains(err.Error(), "below the finished prefix") {
		t.Fatalf("Start(5) = %v", err)
	}
}

func TestRandomCompletionOrderNeverCommitsPastAnUnfinishedRecord(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	p := NewPartitionOffsets()
	const n = 1000
	for o := int64(0); o < n; o++ {
		must(t, p.Start(o))
	}
	finished := map[int64]bool{}
	last := int64(-1)
	for _, i := range rng.Perm(n) {
		o := int64(i)
		must(t, p.Finish(o))
		finished[o] = true
		if c, ok := p.Committable(); ok {
			for x := int64(0); x < c; x++ {
				if !finished[x] {
					t.Fatalf("committable %d passes unfinished %d", c, x)
				}
			}
			if c < n && finished[c] {
				t.Fatalf("committable %d stops before the first unfinished record", c)
			}
			if c <= last {
				t.Fatalf("committable went back: %d after %d", c, last)
			}
			p.Committed(c)
			last = c
		}
	}
	if last != n {
		t.Fatalf("last commit %d, want %d", last, n)
	}
}

func TestTrackerIsPerPartitionAndForgetsRevokedPartitions(t *testing.T) {
	tr := NewTracker()
	a0, a1, b0 := TopicPartition{"a", 0}, TopicPartition{"a", 1}, TopicPartition{"b", 0}
	must(t, tr.Start(a0, 0))
	must(t, tr.Start(a1, 0))
	must(t, tr.Start(b0, 5))
	if ok, err := tr.Finish(a1, 0); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if c := tr.Committable(); len(c) != 1 || c[a1] != 1 {
		t.Fatalf("committable %v", c)
	}
	tr.Committed(a1, 1)
	if c := tr.Committable(); len(c) != 0 {
		t.Fatalf("committable %v after commit", c)
	}
	tr.Drop(a0)
	if ok, _ := tr.Finish(a0, 0); ok {
		t.Fatal("finish of a revoked partition was not ignored")
	}
	if tr.InFlight() != 1 {
		t.Fatalf("in flight %d", tr.InFlight())
	}
}
