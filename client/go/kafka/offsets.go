package kafka

import "fmt"

// PartitionOffsets tracks the records of one partition handed to handlers and not yet covered by
// a commit. Records finish in any order; Committable is one past the longest finished prefix of
// what was started (Kafka's "next offset to read"), so a commit never passes a record that is
// still running or whose failure retryd has not acknowledged. Offsets must be started in
// increasing order (gaps are fine). Not safe for concurrent use.
type PartitionOffsets struct {
	started   []int64 // in order; the finished prefix is popped
	finished  map[int64]bool
	position  int64 // one past the finished prefix; -1 before any
	committed int64 // -1 before any commit
}

// NewPartitionOffsets returns an empty tracker.
func NewPartitionOffsets() *PartitionOffsets {
	return &PartitionOffsets{finished: map[int64]bool{}, position: -1, committed: -1}
}

// Start records that the record at offset was handed to a handler.
func (p *PartitionOffsets) Start(offset int64) error {
	if n := len(p.started); n > 0 && offset <= p.started[n-1] {
		return fmt.Errorf("offset %d started after %d: offsets must increase", offset, p.started[n-1])
	}
	if p.position >= 0 && offset < p.position {
		return fmt.Errorf("offset %d is below the finished prefix ending at %d", offset, p.position)
	}
	p.started = append(p.started, offset)
	return nil
}

// Finish records that the record at offset is done with (it succeeded, or retryd acknowledged
// its failure).
func (p *PartitionOffsets) Finish(offset int64) error {
	if p.finished[offset] || !p.inStarted(offset) {
		return fmt.Errorf("offset %d is not in flight", offset)
	}
	p.finished[offset] = true
	i := 0
	for i < len(p.started) && p.finished[p.started[i]] {
		delete(p.finished, p.started[i])
		p.position = p.started[i] + 1
		i++
	}
	p.started = p.started[i:]
	return nil
}

func (p *PartitionOffsets) inStarted(offset int64) bool {
	// started is sorted: binary search.
	lo, hi := 0, len(p.started)
	for lo < hi {
		mid := (lo + hi) / 2
		if p.started[mid] < offset {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo < len(p.started) && p.started[lo] == offset
}

// InFlight is the number of records started and not finished.
func (p *PartitionOffsets) InFlight() int { return len(p.started) - len(p.finished) }

// Committable returns the offset to commit now, and false when nothing new may be committed.
func (p *PartitionOffsets) Committable() (int64, bool) {
	if p.position < 0 || p.position == p.committed {
		return 0, false
	}
	return p.position, true
}

// Committed records that offset was committed.
func (p *PartitionOffsets) Committed(offset int64) { p.committed = offset }

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Tracker is a PartitionOffsets per partition. Not safe for concurrent use.
type Tracker struct {
	parts map[TopicPartition]*PartitionOffsets
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{parts: map[TopicPartition]*PartitionOffsets{}} }

// Start records that a record was handed to a handler.
func (t *Tracker) Start(tp TopicPartition, offset int64) error {
	p := t.parts[tp]
	if p == nil {
		p = NewPartitionOffsets()
		t.parts[tp] = p
	}
	return p.Start(offset)
}

// Finish marks a record finished; it returns false (and does nothing) when the partition is no
// longer tracked because it was revoked.
func (t *Tracker) Finish(tp TopicPartition, offset int64) (bool, error) {
	p := t.parts[tp]
	if p == nil {
		return false, nil
	}
	return true, p.Finish(offset)
}

// InFlight is the number of records started and not finished, across partitions.
func (t *Tracker) InFlight() int {
	n := 0
	for _, p := range t.parts {
		n += p.InFlight()
	}
	return n
}

// Committable returns, per partition with something new to commit, the offset to commit.
func (t *Tracker) Committable() map[TopicPartition]int64 {
	out := map[TopicPartition]int64{}
	for tp, p := range t.parts {
		if o, ok := p.Committable(); ok {
			out[tp] = o
		}
	}
	return out
}

// Committed records that offset was committed for tp.
func (t *Tracker) Committed(tp TopicPartition, offset int64) {
	if p := t.parts[tp]; p != nil {
		p.Committed(offset)
	}
}

// Drop forgets a partition (revoked or lost): later finishes of its records are ignored.
func (t *Tracker) Drop(tp TopicPartition) { delete(t.parts, tp) }
