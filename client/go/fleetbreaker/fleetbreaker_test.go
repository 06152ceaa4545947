package fleetbreaker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	retryd "github.com/retryd/retryd/client/go"
	"github.com/retryd/retryd/client/go/fleetbreaker"
	retrydv1 "github.com/retryd/retryd/client/go/gen/retryd/v1"
	"github.com/sony/gobreaker/v2"
)

// A fast breaker: 10 calls at 50 % trip it, 2 s open, 3 trials.
const policy = `{"metricsAddr": "off", "shutdownGrace": "2s",
 "policies": [{"name": "gobrk.*", "maxAttempts": 5,
   "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"},
   "circuit": {"failureRateThreshold": 0.5, "minimumCalls": 10, "openDuration": "2s", "halfOpenTrials": 3}}]}`

var target string

func TestMain(m *testing.M) {
	if os.Getenv("FLEETBREAKER_PROC") != "" {
		os.Exit(procMain()) // re-exec'd as one process of the fleet
	}
	stop, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start retryd:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// startServer runs a real retryd on a free loopback port ($RETRYD_BIN, default build/server/retryd).
func startServer() (func(), error) {
	bin := os.Getenv("RETRYD_BIN")
	if bin == "" {
		bin, _ = filepath.Abs(filepath.Join("..", "..", "..", "build", "server", "retryd"))
	}
	dir, err := os.MkdirTemp("", "retryd-fleetbreaker-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "retryd.json")
	if err := os.WriteFile(cfg, []byte(policy), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--data-dir", filepath.Join(dir, "data"), "--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", "127.0.0.1:0", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	port := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`"grpc_port":(\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "server_started") {
				port <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = os.RemoveAll(dir)
	}
	select {
	case p := <-port:
		target = "127.0.0.1:" + p
		return stop, nil
	case <-time.After(20 * time.Second):
		stop()
		return nil, errors.New("retryd did not start in 20 s")
	}
}

var errDown = errors.New("inventory unavailable")

// procMain is one process of the fleet: it reads "call ok|fail" and "state" on stdin and
// answers each with a JSON line. A failed call is also handed to retryd, as a worker would.
func procMain() int {
	ctx := context.Background()
	c, err := retryd.NewClient(ctx, os.Getenv("FLEETBREAKER_TARGET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	service := os.Getenv("FLEETBREAKER_SERVICE")
	cb := fleetbreaker.New[string](c, service, gobreaker.Settings{Name: service},
		fleetbreaker.Options{RefreshInterval: -1, FlushInterval: -1})
	sc := bufio.NewScanner(os.Stdin)
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		out := map[string]any{}
		if len(f) == 2 && f[0] == "call" {
			called := false
			_, err := cb.Execute(func() (string, error) {
				called = true
				if f[1] == "fail" {
					return "", errDown
				}
				return "ok", nil
			})
			out["called"] = called
			switch {
			case err == nil:
				out["error"] = ""
			case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
				out["error"] = err.Error()
			default:
				out["error"] = "downstream"
				n++
				e := &retryd.Envelope{Service: service, MessageID: fmt.Sprintf("%d-%d", os.Getpid(), n), Payload: []byte("{}")}
				if _, err := c.ReportFailure(ctx, e, retryd.Transient(err), ""); err != nil {
					fmt.Fprintln(os.Stderr, "ReportFailure:", err)
					return 1
				}
			}
		}
		out["state"] = cb.State().String()
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
	}
	return 0
}

type proc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startProc(t *testing.T, service string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FLEETBREAKER_PROC=1", "FLEETBREAKER_TARGET="+target, "FLEETBREAKER_SERVICE="+service)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return p
}

type answer struct {
	Called bool   `json:"called"`
	Error  string `json:"error"`
	State  string `json:"state"`
}

func (p *proc) send(t *testing.T, cmd string) answer {
	t.Helper()
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		t.Fatal(err)
	}
	if !p.out.Scan() {
		t.Fatalf("process ended: %v", p.out.Err())
	}
	var a answer
	if err := json.Unmarshal(p.out.Bytes(), &a); err != nil {
		t.Fatalf("%q: %v", p.out.Text(), err)
	}
	return a
}

func TestTwoProcessesShareOneBreaker(t *testing.T) {
	service := fmt.Sprintf("gobrk.%d", time.Now().UnixNano())
	a, b := startProc(t, service), startProc(t, service)

	if got := b.send(t, "call ok"); got != (answer{Called: true, State: "closed"}) {
		t.Fatalf("B's first call: %+v", got)
	}
	// A's 9th failure (1 success + 9 failures = minimum_calls 10, 90 %) trips retryd's circuit.
	for i := 1; i <= 9; i++ {
		got := a.send(t, "call fail")
		want := answer{Called: true, Error: "downstream", State: "closed"}
		if i == 9 {
			want.State = "open"
		}
		if got != want {
			t.Fatalf("A's failure %d: %+v, want %+v", i, got, want)
		}
	}
	// B never failed, yet it fails fast without calling.
	if got := b.send(t, "call ok"); got != (answer{Called: false, Error: gobreaker.ErrOpenState.Error(), State: "open"}) {
		t.Fatalf("B after A's failures: %+v", got)
	}

	// Recovery: after open_duration retryd turns HALF_OPEN; a Worker leases A's failed work as
	// the trials, succeeds, and the circuit closes for both.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := retryd.NewClient(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitState := func(want retrydv1.CircuitState) {
		for {
			got, err := c.GetCircuit(ctx, service)
			if err == nil && got.State == want {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("circuit never turned %v", want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitState(retrydv1.CircuitState_HALF_OPEN)
	if got := b.send(t, "state"); got.State != "half-open" {
		t.Fatalf("B in HALF_OPEN: %+v", got)
	}
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		w := &retryd.Worker{Client: c, Service: service, Concurrency: 4, WaitTime: 500 * time.Millisecond,
			Handler: func(context.Context, *retryd.Envelope) error { return nil }}
		done <- w.Run(wctx)
	}()
	waitState(retrydv1.CircuitState_CLOSED)
	wcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*proc{"A": a, "B": b} {
		if got := p.send(t, "call ok"); got != (answer{Called: true, State: "closed"}) {
			t.Fatalf("%s after recovery: %+v", name, got)
		}
	}
}

// The same fleet on plain gobreaker (5 consecutive failures trip it): B never sees A's failures.
func TestPlainGobreakerDoesNotShare(t *testing.T) {
	a := gobreaker.NewCircuitBreaker[string](gobreaker.Settings{Name: "a"})
	b := gobreaker.NewCircuitBreaker[string](gobreaker.Settings{Name: "b"})
	for i := 0; i < 9; i++ {
		_, _ = a.Execute(func() (string, error) { return "", errDown })
	}
	if a.State() != gobreaker.StateOpen || b.State() != gobreaker.StateClosed {
		t.Fatalf("a %v, b %v", a.State(), b.State())
	}
}
