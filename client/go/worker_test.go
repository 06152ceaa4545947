package retryd_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	retryd "github.com/retryd/retryd/client/go"
	retrydv1 "github.com/retryd/retryd/client/go/gen/retryd/v1"
)

func TestWorkerOutcomesAndGracefulShutdown(t *testing.T) {
	c := newClient(t)
	svc := newService("worker")
	var mu sync.Mutex
	calls := map[string]int{}
	started := make(chan string, 10)
	handler := func(ctx context.Context, e *retryd.Envelope) error {
		mu.Lock()
		calls[e.MessageID]++
		n := calls[e.MessageID]
		mu.Unlock()
		switch e.MessageID {
		case "flaky":
			if n == 1 {
				return retryd.Transient(errors.New("blip"))
			}
		case "poison":
			return retryd.Permanent(errors.New("bad payload"))
		case "slow":
			started <- e.MessageID
			time.Sleep(1500 * time.Millisecond) // longer than the 1 s lease: heartbeats keep it
		}
		return nil
	}
	for _, id := range []string{"ok", "flaky", "poison"} {
		if _, err := c.ReportFailure(context.Background(), &retryd.Envelope{Service: svc, MessageID: id}, errors.New("first"), ""); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	w := &retryd.Worker{Client: c, Service: svc, Handler: handler, Concurrency: 2, VisibilityTimeout: time.Second, WaitTime: 500 * time.Millisecond}
	go func() { done <- w.Run(ctx) }()
	state := func(id string) retrydv1.EnvelopeState { return srv.envelope(t, svc, id).GetState() }
	if !waitFor(t, 10*time.Second, func() bool {
		return state("ok") == retrydv1.EnvelopeState_SUCCEEDED && state("flaky") == retrydv1.EnvelopeState_SUCCEEDED &&
			state("poison") == retrydv1.EnvelopeState_DEAD_LETTERED
	}) {
		t.Fatalf("states: ok=%v flaky=%v poison=%v", state("ok"), state("flaky"), state("poison"))
	}
	// A long handler in flight when the context is cancelled still finishes and reports.
	if _, err := c.ReportFailure(context.Background(), &retryd.Envelope{Service: svc, MessageID: "slow"}, errors.New("first"), ""); err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st := state("slow"); st != retrydv1.EnvelopeState_SUCCEEDED {
		t.Fatalf("slow: %v", st)
	}
	for _, h := range srv.envelope(t, svc, "slow").GetHistory() {
		if h.GetErrorCode() == "LEASE_EXPIRED" {
			t.Fatal("the heartbeat should have kept the lease")
		}
	}
	if calls["flaky"] != 2 || calls["poison"] != 1 || calls["ok"] != 1 || calls["slow"] != 1 {
		t.Fatalf("calls: %v", calls)
	}
}

// workerMain runs when the test binary is re-exec'd as a worker process (kill test).
func workerMain() int {
	c, err := retryd.NewClient(context.Background(), os.Getenv("RETRYD_TEST_TARGET"))
	if err != nil {
		return 1
	}
	w := &retryd.Worker{Client: c, Service: os.Getenv("RETRYD_TEST_WORKER"), Concurrency: 1,
		VisibilityTimeout: 2 * time.Second, WaitTime: 500 * time.Millisecond,
		Handler: func(ctx context.Context, e *retryd.Envelope) error {
			fmt.Println("start", e.MessageID)
			time.Sleep(time.Minute)
			return nil
		}}
	_ = w.Run(context.Background())
	return 0
}

func TestKilledWorkerEnvelopeComesBack(t *testing.T) {
	c := newClient(t)
	svc := newService("kill")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "RETRYD_TEST_WORKER="+svc, "RETRYD_TEST_TARGET="+srv.target)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if _, err := c.ReportFailure(context.Background(), &retryd.Envelope{Service: svc, MessageID: "victim"}, errors.New("first"), ""); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "start victim" {
		t.Fatalf("worker said %q", line)
	}
	if st := srv.envelope(t, svc, "victim").GetState(); st != retrydv1.EnvelopeState_LEASED {
		t.Fatalf("state %v", st)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	le := leaseOneWithin(t, c, svc, 10*time.Second)
	if le.Envelope.MessageID != "victim" || le.Envelope.Attempt != 2 || le.Envelope.LastError.ErrorCode != "LEASE_EXPIRED" {
		t.Fatalf("came back as %+v / %+v", le.Envelope, le.Envelope.LastError)
	}
	_ = c.ReportSuccess(context.Background(), svc, le.LeaseToken)
}

func leaseOneWithin(t *testing.T, c *retryd.Client, svc string, d time.Duration) *retryd.LeasedEnvelope {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		r, err := c.Lease(context.Background(), svc, retryd.LeaseOptions{WaitTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Envelopes) > 0 {
			return r.Envelopes[0]
		}
	}
	t.Fatal("nothing came back")
	return nil
}

// pythonWorker finds the Python interpreter with the retryd package installed.
func pythonWorker() (python, script string) {
	script, _ = filepath.Abs("../python/tests/worker_proc.py")
	python = os.Getenv("RETRYD_PYTHON")
	if python == "" {
		if p, _ := filepath.Abs("../../build/pyenv/bin/python"); fileExists(p) {
			python = p
		}
	}
	return python, script
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// A Python worker and a Go worker on one service share the work; nothing is processed twice.
func TestCrossLanguageWorkersShareWork(t *testing.T) {
	python, script := pythonWorker()
	if python == "" || !fileExists(script) {
		if os.Getenv("RETRYD_REQUIRE_PYTHON") != "" {
			t.Fatal("RETRYD_PYTHON not set and build/pyenv missing")
		}
		t.Skip("no Python with retryd installed (set RETRYD_PYTHON)")
	}
	c := newClient(t)
	svc := newService("share")
	const n = 60

	py := exec.Command(python, script, srv.target, svc, "0.05", "2")
	pyOut, _ := py.StdoutPipe()
	py.Stderr = os.Stderr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = py.Process.Kill(); _ = py.Wait() }()
	var mu sync.Mutex
	seen := map[string][]string{}
	var garbled []string // lines of the Python worker that are none of its words
	ready := make(chan struct{})
	pyDone := make(chan struct{})
	go func() {
		defer close(pyDone)
		sc := bufio.NewScanner(pyOut)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "ready":
				close(ready)
			case len(f) == 2 && f[0] == "start":
				mu.Lock()
				seen[f[1]] = append(seen[f[1]], "python")
				mu.Unlock()
			case len(f) == 2 && (f[0] == "done" || f[0] == "exited"):
			default: // a garbled line would otherwise pass for an envelope nobody processed
				mu.Lock()
				garbled = append(garbled, sc.Text())
				mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, pyOut)
	}()
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		t.Fatal("python worker not ready")
	}
	ctx, cancel := context.WithCancel(context.Background())
	goDone := make(chan error, 1)
	w := &retryd.Worker{Client: c, Service: svc, Concurrency: 2, VisibilityTimeout: 2 * time.Second, WaitTime: 500 * time.Millisecond,
		Handler: func(ctx context.Context, e *retryd.Envelope) error {
			mu.Lock()
			seen[e.MessageID] = append(seen[e.MessageID], "go")
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			return nil
		}}
	go func() { goDone <- w.Run(ctx) }()
	for i := 0; i < n; i++ {
		if _, err := c.ReportFailure(context.Background(), &retryd.Envelope{Service: svc, MessageID: fmt.Sprintf("m%03d", i)}, errors.New("first"), ""); err != nil {
			t.Fatal(err)
		}
	}
	allDone := func() bool {
		for i := 0; i < n; i++ {
			if srv.envelope(t, svc, fmt.Sprintf("m%03d", i)).GetState() != retrydv1.EnvelopeState_SUCCEEDED {
				return false
			}
		}
		return true
	}
	if !waitFor(t, 30*time.Second, allDone) {
		t.Fatal("not everything succeeded")
	}
	cancel()
	<-goDone
	_ = py.Process.Signal(syscall.SIGTERM)
	<-pyDone
	_ = py.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(garbled) > 0 {
		t.Errorf("unexpected lines from the Python worker: %q", garbled)
	}
	byLang := map[string]int{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m%03d", i)
		if len(seen[id]) != 1 {
			t.Errorf("%s processed %d times: %v", id, len(seen[id]), seen[id])
		}
		for _, l := range seen[id] {
			byLang[l]++
		}
	}
	if byLang["go"] == 0 || byLang["python"] == 0 {
		t.Errorf("work not shared: %v", byLang)
	}
	t.Logf("shared: %v", byLang)
}
