package retryd

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Handler processes one leased envelope. Returning nil reports success; an error reports a
// failure as FailureFromError describes it (wrap it with Transient, Recoverable, Permanent to
// choose the class, WithRetryAfter, or use HTTPError). A panic is reported as a failure too.
type Handler func(ctx context.Context, e *Envelope) error

// Worker processes the due retries of one service.
type Worker struct {
	// Client is required.
	Client *Client
	// Service whose retries to take. Required.
	Service string
	// Handler is required.
	Handler Handler
	// Concurrency is how many handlers run at once (default 4); the worker never holds more leases.
	Concurrency int
	// VisibilityTimeout is the lease length (default 30 s); leases of running handlers are
	// extended every third of it.
	VisibilityTimeout time.Duration
	// WaitTime is the long-poll of each Lease call (default 20 s, at most 20 s). Shutdown waits
	// for the poll in flight, so it also bounds how long stopping takes.
	WaitTime time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Run leases and processes retries until ctx is cancelled, then stops leasing, waits for the
// handlers in flight (their contexts are not cancelled) to finish and report, and returns nil.
// It returns an error only for an invalid configuration.
func (w *Worker) Run(ctx context.Context) error {
	if w.Client == nil || w.Service == "" || w.Handler == nil {
		return fmt.Errorf("retryd: Worker needs Client, Service and Handler")
	}
	concurrency := w.Concurrency
	if concurrency <= 0 {
		concurrency = 4
	}
	visibility := w.VisibilityTimeout
	if visibility <= 0 {
		visibility = 30 * time.Second
	}
	if visibility < time.Second {
		return fmt.Errorf("retryd: VisibilityTimeout must be at least 1s")
	}
	wait := w.WaitTime
	if wait <= 0 || wait > 20*time.Second {
		wait = 20 * time.Second
	}
	logger := w.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// Calls made on behalf of leases already held must outlive ctx: a cancelled Lease could
	// lose envelopes the server had already leased, and handlers finish what they hold.
	work := context.WithoutCancel(ctx)

	var mu sync.Mutex
	held := map[string]bool{}
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup

	stopBeat := make(chan struct{})
	beatDone := make(chan struct{})
	go func() { // heartbeat
		defer close(beatDone)
		t := time.NewTicker(visibility / 3)
		defer t.Stop()
		for {
			select {
			case <-stopBeat:
				return
			case <-t.C:
			}
			mu.Lock()
			tokens := make([]string, 0, len(held))
			for tok := range held {
				tokens = append(tokens, tok)
			}
			mu.Unlock()
			for _, tok := range tokens {
				if _, err := w.Client.ExtendLease(work, tok, visibility); err != nil {
					logger.Warn("retryd: ExtendLease failed", "service", w.Service, "error", err)
				}
			}
		}
	}()

	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		// Wait for a free slot (or the stop).
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		free := int32(1)
	fill:
		for int(free) < concurrency {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break fill
			}
		}
		res, err := w.Client.Lease(work, w.Service, LeaseOptions{MaxMessages: free, VisibilityTimeout: visibility, WaitTime: wait})
		if err != nil {
			for i := int32(0); i < free; i++ {
				<-slots
			}
			logger.Warn("retryd: Lease failed", "service", w.Service, "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			if backoff *= 2; backoff > 5*time.Second {
				backoff = 5 * time.Second
			}
			continue
		}
		backoff = 100 * time.Millisecond
		for i := len(res.Envelopes); i < int(free); i++ {
			<-slots // return unused slots
		}
		for _, le := range res.Envelopes { // processed even if ctx was cancelled during the poll
			mu.Lock()
			held[le.LeaseToken] = true
			mu.Unlock()
			wg.Add(1)
			go func(le *LeasedEnvelope) {
				defer func() {
					mu.Lock()
					delete(held, le.LeaseToken)
					mu.Unlock()
					<-slots
					wg.Done()
				}()
				w.process(work, logger, le)
			}(le)
		}
	}
	wg.Wait()
	close(stopBeat)
	<-beatDone
	return nil
}

func (w *Worker) process(ctx context.Context, logger *slog.Logger, le *LeasedEnvelope) {
	e := le.Envelope
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return w.Handler(ctx, e)
	}()
	if err == nil {
		if rerr := w.Client.ReportSuccess(ctx, e.Service, le.LeaseToken); rerr != nil {
			logger.Warn("retryd: ReportSuccess failed", "service", e.Service, "message_id", e.MessageID, "error", rerr)
		}
		return
	}
	logger.Info("retryd: handler failed", "service", e.Service, "message_id", e.MessageID, "attempt", e.Attempt+1, "error", err)
	if _, rerr := w.Client.ReportFailure(ctx, &Envelope{Service: e.Service, MessageID: e.MessageID}, err, le.LeaseToken); rerr != nil {
		logger.Warn("retryd: ReportFailure failed", "service", e.Service, "message_id", e.MessageID, "error", rerr)
	}
}
