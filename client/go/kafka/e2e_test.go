package kafka

// The Consumer against a real Kafka broker (KRaft, started with scripts/kafka-broker.sh) and a
// real retryd: 3000 records over 3 partitions, transient and permanent failures, a consumer
// process killed with -9 mid-stream and restarted. Runs when RETRYD_KAFKA_TESTS=1
// (scripts/test-kafka.sh sets it).

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	retryd "github.com/retryd/retryd/client/go"
	retrydv1 "github.com/retryd/retryd/client/go/gen/retryd/v1"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	records    = 3000
	partitions = 3
	// 3 attempts, 200 ms then 400 ms, no jitter.
	policy = `{"metricsAddr": "off", "shutdownGrace": "2s",
 "policies": [{"name": "default", "maxAttempts": 3,
   "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"}}]}`
)

func TestMain(m *testing.M) {
	if os.Getenv("RETRYD_KAFKA_PROC") == "1" {
		os.Exit(consumerProc())
	}
	os.Exit(m.Run())
}

// consumerProc is the consumer process: a Consumer and its RetryWorker. Record values are their
// index i; every 100th (i%100 == 99) takes 1 s, the others 10 ms. i%50 == 0 fails permanently, else i%7 == 0 fails transiently on every read from Kafka
// and succeeds on its retry through retryd. Each event is one line appended to the journal with a
// single write(2), whole after a SIGKILL: "ok I ATTEMPT", "fail I ATTEMPT", "reported I DUP".
func consumerProc() int {
	env := func(k string) string { return os.Getenv("RETRYD_KAFKA_" + k) }
	f, err := os.OpenFile(env("JOURNAL"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var mu sync.Mutex
	note := func(kind string, i int, n int) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = f.WriteString(fmt.Sprintf("%s %d %d\n", kind, i, n))
	}
	handle := func(_ context.Context, r *Record) error {
		i, _ := strconv.Atoi(string(r.Value))
		// 10 ms a record, 1 s for every 100th: records finish out of order, later ones pass a
		// slow one, and the kill lands mid-stream with slow records in flight.
		if i%100 == 99 && r.Attempt == 1 {
			time.Sleep(time.Second)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
		switch {
		case i%50 == 0:
			note("fail", i, int(r.Attempt))
			return retryd.Permanent(retryd.WithErrorCode(fmt.Errorf("poison record"), "POISON"))
		case i%7 == 0 && r.Attempt == 1:
			note("fail", i, int(r.Attempt))
			return retryd.Transient(retryd.WithErrorCode(fmt.Errorf("downstream timed out"), "UPSTREAM_TIMEOUT"))
		}
		note("ok", i, int(r.Attempt))
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	client, err := retryd.NewClient(ctx, env("TARGET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer client.Close()
	w := RetryWorker(client, env("SERVICE"), handle)
	w.Concurrency, w.VisibilityTimeout, w.WaitTime = 4, 5*time.Second, 500*time.Millisecond
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	c := &Consumer{Retryd: client, Service: env("SERVICE"), Handler: handle, Concurrency: 8,
		OnReported: func(r *Record, d *retryd.Decision) {
			i, _ := strconv.Atoi(string(r.Value))
			dup := 0
			if d.Duplicate {
				dup = 1
			}
			note("reported", i, dup)
		}}
	err = c.Run(ctx, kgo.SeedBrokers(env("BOOTSTRAP")), kgo.ConsumerGroup(env("GROUP")),
		kgo.ConsumeTopics(env("TOPIC")), kgo.SessionTimeout(6*time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	wg.Wait()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type events struct{ ok, fail, reported []int }

func readJournal(t *testing.T, path string) map[int]*events {
	t.Helper()
	out := map[int]*events{}
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return out
		}
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var kind string
		var i, n int
		if _, err := fmt.Sscanf(line, "%s %d %d", &kind, &i, &n); err != nil {
			continue // the line being written at the kill
		}
		e := out[i]
		if e == nil {
			e = &events{}
			out[i] = e
		}
		switch kind {
		case "ok":
			e.ok = append(e.ok, n)
		case "fail":
			e.fail = append(e.fail, n)
		case "reported":
			e.reported = append(e.reported, n)
		}
	}
	return out
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

func repoRoot() string { abs, _ := filepath.Abs(filepath.Join("..", "..", "..")); return abs }

func startRetryd(t *testing.T) (string, *grpc.ClientConn) {
	bin := os.Getenv("RETRYD_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot(), "build", "server", "retryd")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "retryd.json")
	if err := os.WriteFile(cfg, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--data-dir", filepath.Join(dir, "data"), "--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", "127.0.0.1:0", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	port := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`"grpc_port":(\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), `"server_started"`) {
				port <- m[1]
			}
		}
	}()
	select {
	case p := <-port:
		target := "127.0.0.1:" + p
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return target, conn
	case <-time.After(20 * time.Second):
		t.Fatal("retryd did not start in 20 s")
	}
	return "", nil
}

func startBroker(t *testing.T) string {
	dir := t.TempDir()
	script := filepath.Join(repoRoot(), "scripts", "kafka-broker.sh")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script, "start", dir).Output()
	if err != nil {
		t.Fatalf("the Kafka broker did not start: %v", err)
	}
	t.Logf("kafka broker started in %.1f s", time.Since(start).Seconds())
	t.Cleanup(func() { _ = exec.Command("bash", script, "stop", dir).Run() })
	return strings.TrimSpace(string(out))
}

func TestKill9MidStreamLosesNoFailure(t *testing.T) {
	if os.Getenv("RETRYD_KAFKA_TESTS") != "1" {
		t.Skip("Kafka end-to-end tests run from scripts/test-kafka.sh (RETRYD_KAFKA_TESTS=1)")
	}
	target, conn := startRetryd(t)
	admin := retrydv1.NewAdminServiceClient(conn)
	bootstrap := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic, group, service := "orders-"+suffix, "g-"+suffix, "go-kafka-"+suffix

	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// Produce record i (value str(i)) to partition i%3; remember where it landed.
	type pos struct {
		p int32
		o int64
	}
	where := make([]pos, records)
	var batch []*kgo.Record
	for i := 0; i < records; i++ {
		batch = append(batch, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte(strconv.Itoa(i))})
	}
	results := cl.ProduceSync(ctx, batch...)
	if err := results.FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		i, _ := strconv.Atoi(string(r.Record.Value))
		where[i] = pos{r.Record.Partition, r.Record.Offset}
	}
	mid := func(i int) string { return fmt.Sprintf("%s/%d/%d", topic, where[i].p, where[i].o) }
	var permanent, transient, succeed []int
	for i := 0; i < records; i++ {
		switch {
		case i%50 == 0:
			permanent = append(permanent, i)
		case i%7 == 0:
			transient = append(transient, i)
		default:
			succeed = append(succeed, i)
		}
	}

	journal := filepath.Join(t.TempDir(), "journal")
	logFile, err := os.Create(filepath.Join(t.TempDir(), "consumer.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "RETRYD_KAFKA_PROC=1", "RETRYD_KAFKA_JOURNAL="+journal,
			"RETRYD_KAFKA_TARGET="+target, "RETRYD_KAFKA_SERVICE="+service, "RETRYD_KAFKA_BOOTSTRAP="+bootstrap,
			"RETRYD_KAFKA_GROUP="+group, "RETRYD_KAFKA_TOPIC="+topic)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	executed := func() int {
		n := 0
		for _, e := range readJournal(t, journal) {
			n += len(e.ok) + len(e.fail)
		}
		return n
	}
	proc := start()
	defer func() {
		if proc.ProcessState == nil {
			_ = proc.Process.Kill()
			_ = proc.Wait()
		}
	}()
	if !waitFor(2*time.Minute, func() bool { return executed() >= 1000 }) {
		t.Fatalf("the consumer ran %d records in 2 minutes", executed())
	}
	_ = proc.Process.Signal(syscall.SIGKILL)
	_ = proc.Wait()
	committedAt := func() map[int32]int64 {
		out := map[int32]int64{}
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return out
		}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic {
				out[o.Partition] = o.At
			}
		})
		return out
	}
	atKill := committedAt()
	before := readJournal(t, journal)
	if executed() >= records {
		t.Fatal("the consumer finished before the kill")
	}

	proc = start()
	finished := func() bool {
		ev := readJournal(t, journal)
		get := func(i int) *events {
			if e := ev[i]; e != nil {
				return e
			}
			return &events{}
		}
		for _, i := range succeed {
			if len(get(i).ok) == 0 {
				return false
			}
		}
		for _, i := range append(append([]int{}, permanent...), transient...) {
			if len(get(i).reported) == 0 {
				return false
			}
		}
		for _, i := range transient {
			if !retried(get(i).ok) {
				return false
			}
		}
		return true
	}
	// Every partition committed to its end, then every failure handed over and retried (the
	// Worker's retries run after the commits); bounded so that a lost record fails fast.
	want := map[int32]int64{0: records / partitions, 1: records / partitions, 2: records / partitions}
	if !waitFor(150*time.Second, func() bool { return fmt.Sprint(committedAt()) == fmt.Sprint(want) }) {
		t.Fatalf("committed offsets %v, want %v", committedAt(), want)
	}
	if !waitFor(30*time.Second, finished) {
		t.Fatal("not every record was processed or handed over")
	}
	_ = proc.Process.Signal(syscall.SIGTERM)
	if err := proc.Wait(); err != nil {
		t.Fatalf("consumer exit after SIGTERM: %v", err)
	}

	ev := readJournal(t, journal)
	get := func(m map[int]*events, i int) *events {
		if e := m[i]; e != nil {
			return e
		}
		return &events{}
	}
	// In-order commit: at the kill, every record below a partition's committed offset had
	// succeeded or had its failure acknowledged by retryd, and none of them ran from Kafka again;
	// one above it that was reported before the kill was read again and answered as a duplicate.
	firstRuns := func(e *events) int {
		n := 0
		for _, a := range append(append([]int{}, e.ok...), e.fail...) {
			if a == 1 {
				n++
			}
		}
		return n
	}
	for i := 0; i < records; i++ {
		b, a := get(before, i), get(ev, i)
		if where[i].o < atKill[where[i].p] {
			if len(b.ok) == 0 && len(b.reported) == 0 {
				t.Errorf("record %d (offset %d) below the commit %d was unfinished at the kill", i, where[i].o, atKill[where[i].p])
			}
			if firstRuns(a) != firstRuns(b) {
				t.Errorf("record %d below the commit was read again", i)
			}
		} else if len(b.reported) > 0 && !containsInt(a.reported[len(b.reported):], 1) {
			t.Errorf("record %d: reported before the kill, not re-reported as a duplicate: %v", i, a.reported)
		}
	}
	// Dead letters: exactly the permanent records, each NON_RETRYABLE.
	dead := map[string]bool{}
	token := ""
	for {
		resp, err := admin.ListDeadLetters(ctx, &retrydv1.ListDeadLettersRequest{
			Filter: &retrydv1.Filter{Service: service}, PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetDeadLetters() {
			if e.GetDeadLetterReason() != retrydv1.DeadLetterReason_NON_RETRYABLE {
				t.Errorf("%s dead-lettered %v", e.GetMessageId(), e.GetDeadLetterReason())
			}
			dead[e.GetMessageId()] = true
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(dead) != len(permanent) {
		t.Errorf("%d dead letters, want %d", len(dead), len(permanent))
	}
	for _, i := range permanent {
		if !dead[mid(i)] {
			t.Errorf("record %d (%s) is not dead-lettered", i, mid(i))
		}
	}
	// Transient records: retried by the Worker, succeeded.
	late, retriedTwice := 0, 0
	for _, i := range transient {
		resp, err := admin.GetEnvelope(ctx, &retrydv1.GetEnvelopeRequest{Service: service, MessageId: mid(i)})
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if e := resp.GetEnvelope(); e.GetState() != retrydv1.EnvelopeState_SUCCEEDED {
			t.Errorf("record %d: state %v", i, e.GetState())
		} else if e.GetAttempt() > 1 {
			late++
		}
		// The retry is attempt 2, or later when the killed process held its lease.
		if len(ev[i].ok) == 0 || containsInt(ev[i].ok, 1) {
			t.Errorf("record %d: successful executions %v, want retries only", i, ev[i].ok)
		}
		if len(ev[i].ok) > 1 {
			retriedTwice++
		}
	}
	fresh, dup, fails := 0, 0, 0
	for _, i := range append(append([]int{}, permanent...), transient...) {
		n := 0
		for _, d := range ev[i].reported {
			if d == 0 {
				n++
			} else {
				dup++
			}
		}
		if n > 1 {
			t.Errorf("record %d was a new failure %d times", i, n)
		}
		fresh += n
		fails += len(ev[i].fail)
	}
	if fails-(fresh+dup) < 0 || fails-(fresh+dup) > 8 {
		t.Errorf("fails %d, reports %d new + %d duplicate", fails, fresh, dup)
	}
	twice := 0
	for _, i := range succeed {
		if len(ev[i].ok) > 1 {
			twice++
		}
	}
	t.Logf("kafka e2e (go): %d records; succeeded first time %d, retried and succeeded %d, dead-lettered %d; "+
		"failure reports new %d, duplicate %d; successes executed twice after the kill %d; retries run again after the kill %d "+
		"(envelopes with more than one failed attempt: %d); committed at the kill %v",
		records, len(succeed), len(transient), len(permanent), fresh, dup, twice, retriedTwice, late, atKill)
}

// retried: a retry (attempt 2, or later when a lease of the killed process expired) succeeded.
func retried(ok []int) bool {
	for _, a := range ok {
		if a >= 2 {
			return true
		}
	}
	return false
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
