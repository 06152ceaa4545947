package retryd_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	retrydv1 "github.com/retryd/retryd/client/go/gen/retryd/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The C++ tests' fast policy: 3 attempts, 200 ms then 400 ms (max 1 s), no jitter. Services
// named taxonomy.* also have a rule that makes HTTP_503 PERMANENT.
// Payloads up to 8 MiB: a lease of one is over gRPC's default 4 MiB receive limit.
const fastPolicy = `{"metricsAddr": "off", "shutdownGrace": "2s",
 "limits": {"maxPayloadBytes": 8388608},
 "policies": [{"name": "default", "maxAttempts": 3,
   "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"}},
  {"name": "taxonomy.*", "maxAttempts": 3,
   "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"},
   "classification": {"rules": [{"errorCode": "HTTP_503", "errorClass": "PERMANENT"}]}}]}`

// testServer is a real retryd process on a free loopback port (no mocks).
type testServer struct {
	cmd    *exec.Cmd
	target string
	conn   *grpc.ClientConn
	admin  retrydv1.AdminServiceClient
}

var srv *testServer

func TestMain(m *testing.M) {
	if os.Getenv("RETRYD_TEST_WORKER") != "" {
		os.Exit(workerMain()) // re-exec'd as a worker process by the kill test
	}
	s, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start retryd:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	s.stop()
	os.Exit(code)
}

func startServer() (*testServer, error) {
	bin := os.Getenv("RETRYD_BIN")
	if bin == "" {
		// go test runs in client/go: the repository's build/ is two levels up.
		abs, err := filepath.Abs(filepath.Join("..", "..", "build", "server", "retryd"))
		if err != nil {
			return nil, err
		}
		bin = abs
	}
	dir, err := os.MkdirTemp("", "retryd-gotest-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "retryd.json")
	if err := os.WriteFile(cfg, []byte(fastPolicy), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--data-dir", filepath.Join(dir, "data"), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	portCh := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`"grpc_port":(\d+)`)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.Contains(line, `"server_started"`) {
				if m := re.FindStringSubmatch(line); m != nil {
					portCh <- m[1]
					sent = true
				}
			}
		}
		if !sent {
			close(portCh)
		}
	}()
	select {
	case port, ok := <-portCh:
		if !ok {
			_ = cmd.Wait()
			return nil, fmt.Errorf("retryd exited before starting")
		}
		s := &testServer{cmd: cmd, target: "127.0.0.1:" + port}
		s.conn, err = grpc.NewClient(s.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		s.admin = retrydv1.NewAdminServiceClient(s.conn)
		return s, nil
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("retryd did not start in 20s")
	}
}

func (s *testServer) stop() {
	_ = s.conn.Close()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
	}
}

func (s *testServer) envelope(t *testing.T, service, id string) *retrydv1.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := s.admin.GetEnvelope(ctx, &retrydv1.GetEnvelopeRequest{Service: service, MessageId: id})
	if err != nil {
		t.Fatalf("GetEnvelope(%s, %s): %v", service, id, err)
	}
	return resp.GetEnvelope()
}

var serviceSeq int

func newService(prefix string) string {
	serviceSeq++
	return fmt.Sprintf("go-%s-%d-%d", prefix, os.Getpid(), serviceSeq)
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}
