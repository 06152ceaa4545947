// Package retryd is the Go client and worker for retryd, the retry and dead-letter control plane.
//
// A Client makes RetryService calls (every method takes a context.Context first); a Worker
// long-polls due retries of one service, runs a Handler and reports the outcome. Handlers describe
// failures by wrapping errors: HTTPError, WithRetryAfter and WithErrorCode carry facts for the
// server's policy to classify; Transient, Recoverable and Permanent choose the class.
package retryd

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"time"

	retrydv1 "github.com/retryd/retryd/client/go/gen/retryd/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultTarget is used when NewClient gets an empty target and $RETRYD_ADDR is unset.
const DefaultTarget = "127.0.0.1:50051"

// MaxReceiveMessageBytes is the largest response a Client accepts (66 MiB), above the largest
// retryd sends: a Lease holds at least one envelope, whose payload may be as large as the
// server's limits.max_payload_bytes allows (at most 64 MiB), plus its headers and history, and
// the Lease budget (limits.max_lease_response_bytes) is at most 64 MiB too. With gRPC's default
// 4 MiB the response would fail after the lease committed, and the envelope would be leased again
// and again without ever being delivered.
const MaxReceiveMessageBytes = 66 << 20

// Option configures a Client.
type Option interface{ apply(*options) }

type options struct {
	token          string
	tlsConfig      *tls.Config
	dialOptions    []grpc.DialOption
	defaultTimeout time.Duration
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithToken sends "authorization: Bearer <token>" with every call (also over plaintext).
// Without it the token comes from $RETRYD_TOKEN, if set.
func WithToken(token string) Option { return optionFunc(func(o *options) { o.token = token }) }

// WithTLS connects over TLS with cfg (set Certificates for mTLS).
func WithTLS(cfg *tls.Config) Option { return optionFunc(func(o *options) { o.tlsConfig = cfg }) }

// WithInsecure connects over plaintext (the default).
func WithInsecure() Option { return optionFunc(func(o *options) { o.tlsConfig = nil }) }

// WithDialOptions adds gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return optionFunc(func(o *options) { o.dialOptions = append(o.dialOptions, opts...) })
}

// WithDefaultTimeout bounds calls whose context has no deadline (default 10 s; Lease adds its
// wait time).
func WithDefaultTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.defaultTimeout = d })
}

// Client calls retryd's RetryService. It is safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	stub    retrydv1.RetryServiceClient
	token   string
	timeout time.Duration
}

// NewClient connects to target ("host:port"; empty means $RETRYD_ADDR, then DefaultTarget).
// The connection is made lazily; ctx is reserved for dialing options that block.
func NewClient(ctx context.Context, target string, opts ...Option) (*Client, error) {
	_ = ctx
	o := options{token: os.Getenv("RETRYD_TOKEN"), defaultTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if target == "" {
		target = os.Getenv("RETRYD_ADDR")
	}
	if target == "" {
		target = DefaultTarget
	}
	creds := insecure.NewCredentials()
	if o.tlsConfig != nil {
		creds = credentials.NewTLS(o.tlsConfig)
	}
	// Dial options given by the caller come after, so they win (a smaller receive limit too).
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxReceiveMessageBytes))}, o.dialOptions...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, stub: retrydv1.NewRetryServiceClient(conn), token: o.token, timeout: o.defaultTimeout}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection (e.g. for AdminService calls).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

func (c *Client) ctx(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout+extra)
	}
	return ctx, func() {}
}

// ReportFailure records a failure of e and returns retryd's decision. With an empty leaseToken it
// is the first failure (idempotent on service and message id: a re-send answers Duplicate); with
// a token it is the outcome of a leased retry. failure is classified with FailureFromError.
func (c *Client) ReportFailure(ctx context.Context, e *Envelope, failure error, leaseToken string) (*Decision, error) {
	return c.ReportFailureWith(ctx, e, FailureFromError(failure), leaseToken)
}

// ReportFailureWith is ReportFailure with an explicit Failure.
func (c *Client) ReportFailureWith(ctx context.Context, e *Envelope, f *Failure, leaseToken string) (*Decision, error) {
	ctx, cancel := c.ctx(ctx, 0)
	defer cancel()
	resp, err := c.stub.ReportFailure(ctx, &retrydv1.ReportFailureRequest{
		Envelope: e.toProto(), Failure: f.toProto(), LeaseToken: leaseToken,
	})
	if err != nil {
		return nil, err
	}
	return decisionFromProto(resp.GetDecision()), nil
}

// LeaseOptions are the optional parameters of Lease.
type LeaseOptions struct {
	// MaxMessages at most (0 = 1; more than 1000 is reduced to 1000).
	MaxMessages int32
	// VisibilityTimeout is the lease length (0 = 30 s).
	VisibilityTimeout time.Duration
	// WaitTime is the long-poll when nothing is due (0 = answer at once; at most 20 s).
	WaitTime time.Duration
}

// Lease takes due retries of service, each under a lease.
func (c *Client) Lease(ctx context.Context, service string, o LeaseOptions) (*LeaseResult, error) {
	if o.WaitTime > 20*time.Second {
		o.WaitTime = 20 * time.Second
	}
	req := &retrydv1.LeaseRequest{Service: service, MaxMessages: o.MaxMessages}
	if o.VisibilityTimeout > 0 {
		req.VisibilityTimeout = durationpb.New(o.VisibilityTimeout)
	}
	if o.WaitTime > 0 {
		req.WaitTime = durationpb.New(o.WaitTime)
	}
	ctx, cancel := c.ctx(ctx, o.WaitTime)
	defer cancel()
	resp, err := c.stub.Lease(ctx, req)
	if err != nil {
		return nil, err
	}
	out := &LeaseResult{CircuitState: resp.GetCircuitState()}
	for _, le := range resp.GetEnvelopes() {
		out.Envelopes = append(out.Envelopes, &LeasedEnvelope{
			Envelope:       envelopeFromProto(le.GetEnvelope()),
			LeaseToken:     le.GetLeaseToken(),
			LeaseExpiresAt: tsTime(le.GetLeaseExpiresAt()),
		})
	}
	return out, nil
}

// ReportSuccess tells retryd a leased retry succeeded.
func (c *Client) ReportSuccess(ctx context.Context, service, leaseToken string) error {
	ctx, cancel := c.ctx(ctx, 0)
	defer cancel()
	_, err := c.stub.ReportSuccess(ctx, &retrydv1.ReportSuccessRequest{Service: service, LeaseToken: leaseToken})
	return err
}

// ExtendLease pushes a lease's expiry to now + visibility and returns the new expiry.
func (c *Client) ExtendLease(ctx context.Context, leaseToken string, visibility time.Duration) (time.Time, error) {
	ctx, cancel := c.ctx(ctx, 0)
	defer cancel()
	resp, err := c.stub.ExtendLease(ctx, &retrydv1.ExtendLeaseRequest{
		LeaseToken: leaseToken, VisibilityTimeout: durationpb.New(visibility),
	})
	if err != nil {
		return time.Time{}, err
	}
	return tsTime(resp.GetLeaseExpiresAt()), nil
}

// RecordOutcomes reports batched first-attempt counts (feeds the retry budget and the circuit).
func (c *Client) RecordOutcomes(ctx context.Context, service string, successes, failures int64) error {
	ctx, cancel := c.ctx(ctx, 0)
	defer cancel()
	_, err := c.stub.RecordOutcomes(ctx, &retrydv1.RecordOutcomesRequest{
		Service: service, Successes: successes, Failures: failures,
	})
	return err
}

// GetCircuit returns the circuit state of service.
func (c *Client) GetCircuit(ctx context.Context, service string) (*Circuit, error) {
	ctx, cancel := c.ctx(ctx, 0)
	defer cancel()
	resp, err := c.stub.GetCircuit(ctx, &retrydv1.GetCircuitRequest{Service: service})
	if err != nil {
		return nil, err
	}
	return &Circuit{
		State: resp.GetState(), Since: tsTime(resp.GetSince()),
		NextProbeAt: tsTime(resp.GetNextProbeAt()), FailureRate: resp.GetFailureRate(),
	}, nil
}

// IsLeaseLost reports whether err means a lease token is unknown or expired
// (FAILED_PRECONDITION).
func IsLeaseLost(err error) bool { return Code(err) == codes.FailedPrecondition }

// Code returns the gRPC status code of err (codes.OK for nil, codes.Unknown if not a status).
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var s interface{ GRPCStatus() *status.Status }
	if errors.As(err, &s) {
		return s.GRPCStatus().Code()
	}
	return status.Code(err)
}
