package retryd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	retryd "github.com/retryd/retryd/client/go"
	retrydv1 "github.com/retryd/retryd/client/go/gen/retryd/v1"
	"google.golang.org/grpc/codes"
)

func newClient(t *testing.T) *retryd.Client {
	t.Helper()
	c, err := retryd.NewClient(context.Background(), srv.target, retryd.WithDefaultTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func leaseOne(t *testing.T, c *retryd.Client, service string) *retryd.LeasedEnvelope {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.Lease(context.Background(), service, retryd.LeaseOptions{WaitTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Envelopes) > 0 {
			return r.Envelopes[0]
		}
	}
	t.Fatalf("nothing leased for %s", service)
	return nil
}

func TestFullCycle(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	svc := newService("cycle")
	env := &retryd.Envelope{Service: svc, MessageID: "order-1", Payload: []byte(`{"order":1}`), Headers: map[string]string{"tenant": "acme"}}
	d, err := c.ReportFailure(ctx, env, retryd.WithErrorCode(retryd.Transient(errors.New("timeout")), "UPSTREAM_TIMEOUT"), "")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Scheduled() || d.Attempt != 1 || d.Duplicate || d.ErrorClass != retryd.ClassTransient || d.Delay != 200*time.Millisecond {
		t.Fatalf("first failure: %+v", d)
	}
	if d2, _ := c.ReportFailure(ctx, env, errors.New("timeout"), ""); !d2.Duplicate {
		t.Fatalf("re-sent first failure not duplicate: %+v", d2)
	}
	le := leaseOne(t, c, svc)
	if le.Envelope.Attempt != 1 || string(le.Envelope.Payload) != `{"order":1}` || le.Envelope.LastError.ErrorCode != "UPSTREAM_TIMEOUT" {
		t.Fatalf("leased: %+v", le.Envelope)
	}
	d, err = c.ReportFailure(ctx, &retryd.Envelope{Service: svc, MessageID: "order-1"}, retryd.Transient(errors.New("still down")), le.LeaseToken)
	if err != nil || !d.Scheduled() || d.Attempt != 2 || d.Delay != 400*time.Millisecond {
		t.Fatalf("retry failure: %+v %v", d, err)
	}
	le = leaseOne(t, c, svc)
	if exp, err := c.ExtendLease(ctx, le.LeaseToken, time.Minute); err != nil || !exp.After(le.LeaseExpiresAt) {
		t.Fatalf("ExtendLease: %v %v", exp, err)
	}
	if err := c.ReportSuccess(ctx, svc, le.LeaseToken); err != nil {
		t.Fatal(err)
	}
	if st := srv.envelope(t, svc, "order-1").GetState(); st != retrydv1.EnvelopeState_SUCCEEDED {
		t.Fatalf("state %v", st)
	}
	if err := c.ReportSuccess(ctx, svc, le.LeaseToken); !retryd.IsLeaseLost(err) {
		t.Fatalf("spent token: %v", err)
	}
	// A late duplicate tells the envelope as it is: succeeded, with no made-up next retry time.
	late, err := c.ReportFailure(ctx, env, errors.New("late"), "")
	if err != nil || !late.Duplicate || late.State != retrydv1.EnvelopeState_SUCCEEDED || !late.NextRetryAt.IsZero() {
		t.Fatalf("late duplicate: %+v %v", late, err)
	}
}

func TestExhaustionToDLQ(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	svc := newService("exhaust")
	e := &retryd.Envelope{Service: svc, MessageID: "m"}
	if _, err := c.ReportFailure(ctx, e, errors.New("boom"), ""); err != nil {
		t.Fatal(err)
	}
	var d *retryd.Decision
	for i := 0; i < 2; i++ {
		le := leaseOne(t, c, svc)
		var err error
		if d, err = c.ReportFailure(ctx, e, errors.New("boom"), le.LeaseToken); err != nil {
			t.Fatal(err)
		}
	}
	if !d.DeadLettered() || d.Reason != retrydv1.DeadLetterReason_RETRY_EXHAUSTED || d.Attempt != 3 {
		t.Fatalf("exhaustion: %+v", d)
	}
}

func TestPermanentToDLQ(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	svc := newService("perm")
	for id, err := range map[string]error{
		"wrapped": retryd.Permanent(errors.New("missing field")),
		"http400": retryd.HTTPError(400, ""),
	} {
		d, rerr := c.ReportFailure(ctx, &retryd.Envelope{Service: svc, MessageID: id}, err, "")
		if rerr != nil || !d.DeadLettered() || d.Reason != retrydv1.DeadLetterReason_NON_RETRYABLE {
			t.Fatalf("%s: %+v %v", id, d, rerr)
		}
	}
}

// One table, on the server: a policy rule on HTTP_503 (fastPolicy's taxonomy.* services) makes a
// client-reported 503 PERMANENT; without a rule the server's defaults decide (503 TRANSIENT, 425
// PERMANENT); a class the application chose wins.
func TestServerPolicyClassifiesHTTPFailures(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	plain := newService("taxonomy")
	ruled := "taxonomy." + plain
	for _, tc := range []struct {
		svc, id string
		err     error
		class   retryd.ErrorClass
	}{
		{plain, "503", retryd.HTTPError(503, ""), retryd.ClassTransient},
		{plain, "425", retryd.HTTPError(425, ""), retryd.ClassPermanent},
		{ruled, "503", retryd.HTTPError(503, "1"), retryd.ClassPermanent},
		{ruled, "503-chosen", retryd.Transient(retryd.HTTPError(503, "")), retryd.ClassTransient},
	} {
		d, err := c.ReportFailure(ctx, &retryd.Envelope{Service: tc.svc, MessageID: tc.id}, tc.err, "")
		if err != nil || d.ErrorClass != tc.class || d.DeadLettered() != (tc.class == retryd.ClassPermanent) {
			t.Fatalf("%s/%s: %+v %v", tc.svc, tc.id, d, err)
		}
	}
}

// A lease always holds one envelope; with the server's payload limit above 4 MiB (fastPolicy: 8
// MiB) the client must receive more than gRPC's default, or the lease commits, the response fails
// here and the envelope is never delivered.
func TestEnvelopeOver4MiBIsLeasedAndDelivered(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	svc := newService("big")
	payload := make([]byte, 6<<20)
	for i := range payload {
		payload[i] = byte(i)
	}
	if _, err := c.ReportFailure(ctx, &retryd.Envelope{Service: svc, MessageID: "big", Payload: payload}, retryd.Transient(errors.New("t")), ""); err != nil {
		t.Fatal(err)
	}
	le := leaseOne(t, c, svc)
	if le.Envelope.MessageID != "big" || !bytes.Equal(le.Envelope.Payload, payload) {
		t.Fatalf("leased %s with %d bytes", le.Envelope.MessageID, len(le.Envelope.Payload))
	}
	if err := c.ReportSuccess(ctx, svc, le.LeaseToken); err != nil {
		t.Fatal(err)
	}
}

func TestRetryAfterHonored(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	svc := newService("ra")
	t0 := time.Now()
	d, err := c.ReportFailure(ctx, &retryd.Envelope{Service: svc, MessageID: "m"}, retryd.HTTPError(429, "2"), "")
	if err != nil || !d.Scheduled() || d.Delay < 2*time.Second {
		t.Fatalf("%+v %v", d, err)
	}
	r, err := c.Lease(ctx, svc, retryd.LeaseOptions{WaitTime: time.Second})
	if err != nil || len(r.Envelopes) != 0 {
		t.Fatalf("leased before Retry-After: %v %v", r, err)
	}
	le := leaseOne(t, c, svc)
	if time.Since(t0) < 1900*time.Millisecond {
		t.Fatalf("leased after %v", time.Since(t0))
	}
	_ = c.ReportSuccess(ctx, svc, le.LeaseToken)
	// WithRetryAfter on any error works the same way.
	d, _ = c.ReportFailure(ctx, &retryd.Envelope{Service: svc, MessageID: "m2"}, retryd.WithRetryAfter(errors.New("slow down"), 3*time.Second), "")
	if d.Delay < 3*time.Second {
		t.Fatalf("WithRetryAfter: %+v", d)
	}
}

func TestErrorsAndCircuit(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	svc := newService("err")
	_, err := c.ReportFailure(ctx, &retryd.Envelope{Service: "Bad Name", MessageID: "x"}, errors.New("x"), "")
	if retryd.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad service: %v", err)
	}
	if _, err := c.ExtendLease(ctx, "nope", time.Minute); !retryd.IsLeaseLost(err) {
		t.Fatalf("bad token: %v", err)
	}
	if err := c.RecordOutcomes(ctx, svc, 5, 1); err != nil {
		t.Fatal(err)
	}
	circ, err := c.GetCircuit(ctx, svc)
	if err != nil || circ.State != retrydv1.CircuitState_CLOSED {
		t.Fatalf("circuit %+v %v", circ, err)
	}
	tc, _ := retryd.NewClient(ctx, srv.target, retryd.WithToken("secret"))
	defer tc.Close()
	if _, err := tc.GetCircuit(ctx, svc); err != nil {
		t.Fatalf("with token: %v", err)
	}
}

func TestClassification(t *testing.T) {
	// The facts, no class: the server's policy classifies HTTP failures.
	for _, status := range []int{400, 422, 425, 429, 501, 503} {
		f := retryd.FailureFromError(retryd.HTTPError(status, "7"))
		if f.ErrorClass != retryd.ClassUnspecified || f.RetryAfter != 7*time.Second || f.HTTPStatus != int32(status) || f.ErrorCode != fmt.Sprintf("HTTP_%d", status) {
			t.Fatalf("%d: %+v", status, f)
		}
	}
	if f := retryd.FailureFromError(retryd.Permanent(retryd.HTTPError(503, ""))); f.ErrorClass != retryd.ClassPermanent || f.HTTPStatus != 503 {
		t.Fatalf("a chosen class is sent: %+v", f)
	}
	if retryd.HTTPError(200, "") != nil {
		t.Fatal("200 is not an error")
	}
	if f := retryd.FailureFromError(context.DeadlineExceeded); f.ErrorClass != retryd.ClassUnspecified || f.ErrorCode != "TIMEOUT" {
		t.Fatalf("deadline: %+v", f)
	}
	base := errors.New("db down")
	err := retryd.WithRetryAfter(retryd.Recoverable(base), time.Minute)
	if !errors.Is(err, base) {
		t.Fatal("wrappers must unwrap")
	}
	if f := retryd.FailureFromError(err); f.ErrorClass != retryd.ClassRecoverable || f.RetryAfter != time.Minute {
		t.Fatalf("wrapped: %+v", f)
	}
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if d := retryd.ParseRetryAfter(now.Add(30*time.Second).Format(http1123), now); d != 30*time.Second {
		t.Fatalf("date: %v", d)
	}
	if retryd.Transient(nil) != nil {
		t.Fatal("nil stays nil")
	}
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"
