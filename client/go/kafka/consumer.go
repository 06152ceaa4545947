// Package kafka is a Kafka consumer (franz-go) that hands failed records to retryd and keeps its
// partitions moving, and commits offsets in order.
//
// Consumer runs Handler on each record with up to Concurrency records in flight, so records of a
// partition finish out of order. A record whose handler fails is reported to retryd
// (ReportFailure, idempotent on its message id) and the partition moves on: no retry topic and
// no blocking. A partition's offset is committed only when every earlier record of it either
// succeeded or had its failure acknowledged by retryd, so a crash loses no failure: records after
// the last commit are read again, a failure reported twice is answered Duplicate and counted
// once, and a success may run twice.
//
// Retries come back through a retryd Worker: RetryWorker builds one that turns each due envelope
// back into a Record and calls the same handler.
//
// This is a module of its own (github.com/retryd/retryd/client/go/kafka), so the client module
// does not depend on franz-go.
package kafka

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	retryd "github.com/retryd/retryd/client/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Envelope headers that carry a record's origin, so a retry can rebuild the Record.
const (
	HeaderTopic     = "kafka.topic"
	HeaderPartition = "kafka.partition"
	HeaderOffset    = "kafka.offset"
	HeaderKey       = "kafka.key"     // base64; absent for a record without a key
	HeaderPrefix    = "kafka.header." // + the record header's key; base64 of its value
)

// Record is a Kafka record as the handler sees it, first from Kafka and then from retryd.
// Attempt is 1 from Kafka and n > 1 for retryd's (n−1)th retry.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string][]byte
	Attempt   int32
}

// Handler processes one record: nil is success, an error is a failure classified by
// retryd.FailureFromError (wrap it with retryd.Transient, retryd.Permanent, ...).
type Handler func(ctx context.Context, r *Record) error

// DefaultMessageID is "topic/partition/offset": unique per record, and the same when it is read
// again.
func DefaultMessageID(r *Record) string {
	return fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
}

// EnvelopeHeaders are the envelope headers that carry r's origin (see RecordFromEnvelope).
func EnvelopeHeaders(r *Record) map[string]string {
	h := map[string]string{
		HeaderTopic:     r.Topic,
		HeaderPartition: strconv.Itoa(int(r.Partition)),
		HeaderOffset:    strconv.FormatInt(r.Offset, 10),
	}
	if r.Key != nil {
		h[HeaderKey] = base64.StdEncoding.EncodeToString(r.Key)
	}
	for k, v := range r.Headers {
		h[HeaderPrefix+k] = base64.StdEncoding.EncodeToString(v)
	}
	return h
}

// RecordFromEnvelope is the Record a retried envelope came from (Attempt = the attempt about to
// run).
func RecordFromEnvelope(e *retryd.Envelope) *Record {
	r := &Record{Topic: e.Headers[HeaderTopic], Partition: -1, Offset: -1, Value: e.Payload,
		Headers: map[string][]byte{}, Attempt: e.Attempt + 1}
	if p, err := strconv.Atoi(e.Headers[HeaderPartition]); err == nil {
		r.Partition = int32(p)
	}
	if o, err := strconv.ParseInt(e.Headers[HeaderOffset], 10, 64); err == nil {
		r.Offset = o
	}
	if k, ok := e.Headers[HeaderKey]; ok {
		r.Key, _ = base64.StdEncoding.DecodeString(k)
	}
	for k, v := range e.Headers {
		if strings.HasPrefix(k, HeaderPrefix) {
			r.Headers[strings.TrimPrefix(k, HeaderPrefix)], _ = base64.StdEncoding.DecodeString(v)
		}
	}
	return r
}

// RetryWorker is a retryd Worker for service that calls handler with the Record each due retry
// came from. Set its Concurrency, WaitTime, ... before Run.
func RetryWorker(client *retryd.Client, service string, handler Handler) *retryd.Worker {
	return &retryd.Worker{Client: client, Service: service, Handler: func(ctx context.Context, e *retryd.Envelope) error {
		return handler(ctx, RecordFromEnvelope(e))
	}}
}

// Consumer consumes topics with a consumer group, hands failures to retryd and commits in order.
type Consumer struct {
	// Retryd is the retryd client. Required.
	Retryd *retryd.Client
	// Service the failures go to. Required.
	Service string
	// Handler is required.
	Handler Handler
	// MessageID of a record's envelope (default DefaultMessageID). A key the application gives,
	// such as an order id, works too; it must be the same every time the record is read.
	MessageID func(*Record) string
	// Failure turns a handler's error into the failure to report (default
	// retryd.FailureFromError).
	Failure func(error) *retryd.Failure
	// Concurrency is how many handlers run at once (default 8).
	Concurrency int
	// CommitInterval between commits (default 500 ms); a commit is also made on revocation and
	// on stop.
	CommitInterval time.Duration
	// ReportBackoffMax caps the backoff between re-sends of a failure retryd could not take
	// (unreachable); its offset stays uncommitted meanwhile (default 5 s).
	ReportBackoffMax time.Duration
	// OnReported, if set, is called once retryd acknowledged a failure (d.Duplicate for a
	// re-sent one).
	OnReported func(r *Record, d *retryd.Decision)
	// Logger (default slog.Default()).
	Logger *slog.Logger

	mu      sync.Mutex
	tracker *Tracker
}

// Run creates a franz-go client from opts (seed brokers, kgo.ConsumerGroup, kgo.ConsumeTopics,
// ...; Run adds kgo.DisableAutoCommit, kgo.BlockRebalanceOnPoll and the revocation callbacks),
// consumes until ctx is cancelled, then waits for the handlers in flight (their contexts are not
// cancelled), commits what is finished, leaves the group and returns nil. It returns an error
// for an invalid configuration or a client that cannot be created.
func (c *Consumer) Run(ctx context.Context, opts ...kgo.Opt) error {
	if c.Retryd == nil || c.Service == "" || c.Handler == nil {
		return errors.New("kafka: Consumer needs Retryd, Service and Handler")
	}
	concurrency := c.Concurrency
	if concurrency <= 0 {
		concurrency = 8
	}
	interval := c.CommitInterval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.Default()
	}
	c.mu.Lock()
	c.tracker = NewTracker()
	c.mu.Unlock()
	all := append(append([]kgo.Opt{}, opts...),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(c.revoked), kgo.OnPartitionsLost(c.lost))
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	work := context.WithoutCancel(ctx)

	committerDone := make(chan struct{})
	stopCommitter := make(chan struct{})
	go func() {
		defer close(committerDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stopCommitter:
				return
			case <-t.C:
				c.commit(work, cl, nil, logger)
			}
		}
	}()

	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
poll:
	for {
		fetches := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			cl.AllowRebalance()
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			logger.Warn("kafka: fetch error", "topic", t, "partition", p, "err", err)
		})
		var recs []*kgo.Record
		c.mu.Lock()
		fetches.EachRecord(func(kr *kgo.Record) {
			if err := c.tracker.Start(TopicPartition{kr.Topic, kr.Partition}, kr.Offset); err != nil {
				logger.Error("kafka: record out of order", "err", err)
				return
			}
			recs = append(recs, kr)
		})
		c.mu.Unlock()
		// Rebalances wait until every polled record is in the tracker, so a revocation sees them.
		cl.AllowRebalance()
		for _, kr := range recs {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				break poll // the rest stay unfinished: not committed, read again
			}
			wg.Add(1)
			go func(r *Record) {
				defer wg.Done()
				defer func() { <-slots }()
				c.process(ctx, work, r, logger)
			}(toRecord(kr))
		}
	}
	wg.Wait()
	close(stopCommitter)
	<-committerDone
	c.commit(work, cl, nil, logger)
	cl.Close() // leaves the group; the revocation callback commits once more
	return nil
}

func toRecord(kr *kgo.Record) *Record {
	r := &Record{Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset, Key: kr.Key, Value: kr.Value,
		Headers: map[string][]byte{}, Attempt: 1}
	for _, h := range kr.Headers {
		r.Headers[h.Key] = h.Value
	}
	return r
}

// process runs the handler and, on failure, hands the failure to retryd; the record is finished
// only once it succeeded or retryd acknowledged it.
func (c *Consumer) process(ctx, work context.Context, r *Record, logger *slog.Logger) {
	if err := c.Handler(work, r); err != nil {
		if !c.handOver(ctx, work, r, err, logger) {
			return // stopped before retryd took it: left uncommitted, read again
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.tracker.Finish(TopicPartition{r.Topic, r.Partition}, r.Offset); err != nil {
		logger.Error("kafka: finish", "err", err)
	}
}

func (c *Consumer) handOver(ctx, work context.Context, r *Record, herr error, logger *slog.Logger) bool {
	mid := DefaultMessageID
	if c.MessageID != nil {
		mid = c.MessageID
	}
	env := &retryd.Envelope{Service: c.Service, MessageID: mid(r), Payload: r.Value, Source: r.Topic,
		Headers: EnvelopeHeaders(r)}
	f := retryd.FailureFromError(herr)
	if c.Failure != nil {
		f = c.Failure(herr)
	}
	backoff, maxBackoff := 100*time.Millisecond, c.ReportBackoffMax
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	for {
		d, err := c.Retryd.ReportFailureWith(work, env, f, "")
		if err == nil {
			if c.OnReported != nil {
				c.OnReported(r, d)
			}
			return true
		}
		if ctx.Err() != nil {
			logger.Warn("kafka: ReportFailure failed while stopping; the record stays uncommitted",
				"message_id", env.MessageID, "err", err)
			return false
		}
		logger.Warn("kafka: ReportFailure failed; retrying", "message_id", env.MessageID, "err", err,
			"in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// commit commits every committable offset (of the partitions in only, when given).
func (c *Consumer) commit(ctx context.Context, cl *kgo.Client, only map[string][]int32, logger *slog.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commitLocked(ctx, cl, only, logger)
}

func (c *Consumer) commitLocked(ctx context.Context, cl *kgo.Client, only map[string][]int32, logger *slog.Logger) {
	todo := c.tracker.Committable()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for tp, o := range todo {
		if only != nil && !contains(only[tp.Topic], tp.Partition) {
			delete(todo, tp)
			continue
		}
		if offsets[tp.Topic] == nil {
			offsets[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	if len(todo) == 0 {
		return
	}
	var requestErr, partitionErr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			requestErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					partitionErr = perr
					delete(todo, TopicPartition{t.Topic, p.Partition})
				}
			}
		}
	})
	if requestErr != nil {
		logger.Warn("kafka: commit failed (will retry)", "err", requestErr)
		return
	}
	if partitionErr != nil {
		logger.Warn("kafka: commit of some partitions failed (will retry)", "err", partitionErr)
	}
	for tp, o := range todo {
		c.tracker.Committed(tp, o)
	}
}

func contains(ps []int32, p int32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// revoked commits what is finished of the revoked partitions, then forgets them.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commitLocked(ctx, cl, parts, slog.Default())
	c.dropLocked(parts)
}

// lost forgets the lost partitions (a commit would fail: they belong to another member now).
func (c *Consumer) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(parts)
}

func (c *Consumer) dropLocked(parts map[string][]int32) {
	for t, ps := range parts {
		for _, p := range ps {
			c.tracker.Drop(TopicPartition{t, p})
		}
	}
}
