package harness

// Live `sensor-connector serve` processes on loopback ports.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ConnectorBinary is the virtualenv's entry point.
func ConnectorBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(Venv(t), "bin", "sensor-connector")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `python3 dev.py install` at the repository root first", bin)
	}
	return bin
}

// SigningKey is a key file as an operator would mount it, with the id the connector derives from it.
type SigningKey struct {
	Path string
	ID   string
}

// NewSigningKey writes a fresh random key to dir/name.
func NewSigningKey(t testing.TB, dir, name string) SigningKey {
	t.Helper()
	raw := make([]byte, 48)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The connector names a key by the first 8 hex digits of SHA-256 over its (stripped) bytes.
	sum := sha256.Sum256([]byte(secret))
	return SigningKey{Path: path, ID: hex.EncodeToString(sum[:])[:8]}
}

// TaskID is how the connector's log names a task: the first 12 hex digits of SHA-256 over resource_meta.
func TaskID(meta []byte) string {
	sum := sha256.Sum256(meta)
	return hex.EncodeToString(sum[:])[:12]
}

// LogBuffer keeps a process's output for assertions and failure reports.
type LogBuffer struct {
	mu   sync.Mutex
	text strings.Builder
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.text.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.text.String()
}

// nextPort is the last port FreePort handed out; it starts at a place of its own per test process.
var nextPort atomic.Int32

// FreePort returns a loopback port free now and never returned before, below the kernel's ephemeral
// range (32768 and up): a port the kernel picks for bind(0) or an outgoing connection could be handed
// to someone else between the check here and the replica binding it. For the metrics endpoint, whose
// address the connector does not log.
func FreePort(t testing.TB) int {
	t.Helper()
	nextPort.CompareAndSwap(0, int32(20000+(os.Getpid()*37)%10000))
	for {
		port := int(nextPort.Add(1))
		if port >= 32768 {
			t.Fatal("FreePort: no free port left below the ephemeral range")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken by something else: try the next one
		}
		_ = l.Close()
		return port
	}
}

// ClosedPort is a loopback address nothing listens on: a server that cannot be reached.
func ClosedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// Serve says how to start a replica.
type Serve struct {
	Name    string       // in failure reports
	Env     []string     // added to this process's environment
	Keys    []SigningKey // a --signing-key-file each; the first signs
	Metrics bool         // serve metrics on a FreePort (GetsAnswered reads them); else --metrics-port 0
	Args    []string     // further options
}

// Probe asks the server at addr whether it serves (the suites own their gRPC health clients).
type Probe func(ctx context.Context, addr string) (serving bool, status string, err error)

// Replica is one `sensor-connector serve` process on a loopback port.
type Replica struct {
	Name        string
	Addr        string // host:port of its gRPC server, once Ready
	MetricsAddr string // host:port of its metrics, when Serve.Metrics
	Log         *LogBuffer
	cmd         *exec.Cmd
	exited      chan struct{}
	exitErr     error
}

var listeningRe = regexp.MustCompile(`listening on 127\.0\.0\.1:(\d+)`)

// Spawn starts `sensor-connector serve` on a gRPC port of its choosing without waiting for it. It is
// killed at test cleanup if still running, and its log is reported if the test failed.
func Spawn(t testing.TB, s Serve) *Replica {
	t.Helper()
	metrics := "0"
	r := &Replica{Name: s.Name, Log: &LogBuffer{}, exited: make(chan struct{})}
	if s.Metrics {
		metrics = strconv.Itoa(FreePort(t))
		r.MetricsAddr = "127.0.0.1:" + metrics
	}
	// The sensors' files live under t.TempDir(), in the system's temporary directory: a local root.
	args := []string{"serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", metrics,
		"--log-level", "INFO", "--local-roots", os.TempDir()}
	for _, k := range s.Keys {
		args = append(args, "--signing-key-file", k.Path)
	}
	r.cmd = exec.Command(ConnectorBinary(t), append(args, s.Args...)...)
	r.cmd.Env = append(os.Environ(), s.Env...)
	r.cmd.Dir = t.TempDir()
	r.cmd.Stdout, r.cmd.Stderr = r.Log, r.Log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start replica %s: %v", r.Name, err)
	}
	go func() {
		r.exitErr = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("--- log of replica %s ---\n%s", r.Name, r.Log.String())
		}
	})
	return r
}

// Start spawns a replica and waits until it is Ready.
func Start(t testing.TB, s Serve, probe Probe) *Replica {
	t.Helper()
	r := Spawn(t, s)
	r.Ready(t, probe)
	return r
}

// Ready waits until the replica logs its port and `probe` says it serves.
func (r *Replica) Ready(t testing.TB, probe Probe) {
	t.Helper()
	Eventually(t, 60*time.Second, "replica "+r.Name+" listening", func() (bool, string) {
		select {
		case <-r.exited:
			t.Fatalf("replica %s exited before listening (%v):\n%s", r.Name, r.exitErr, r.Log.String())
		default:
		}
		if m := listeningRe.FindStringSubmatch(r.Log.String()); m != nil {
			r.Addr = "127.0.0.1:" + m[1]
			return true, ""
		}
		return false, "no 'listening on' line yet"
	})
	WaitServing(t, r.Addr, 30*time.Second, probe)
}

// WaitServing polls `probe` (one second each) until the server at addr serves.
func WaitServing(t testing.TB, addr string, within time.Duration, probe Probe) {
	t.Helper()
	Eventually(t, within, "connector "+addr+" health SERVING", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		serving, status, err := probe(ctx, addr)
		if err != nil {
			return false, err.Error()
		}
		return serving, status
	})
}

// Terminate sends SIGTERM (what the kubelet sends) without waiting.
func (r *Replica) Terminate(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", r.Name, err)
	}
}

// WaitExit waits for the process to end by itself and requires a clean exit.
func (r *Replica) WaitExit(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-r.exited:
		if r.exitErr != nil {
			t.Errorf("replica %s exited with %v", r.Name, r.exitErr)
		}
	case <-time.After(within):
		t.Fatalf("replica %s still running %s after SIGTERM", r.Name, within)
	}
}

// GetsAnswered is the number of GetTask calls the replica answered (with a response or an error), from
// its Prometheus endpoint (Serve.Metrics).
func (r *Replica) GetsAnswered() (float64, error) {
	res, err := http.Get("http://" + r.MetricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		counter := strings.Contains(line, "requests_success_total{") || strings.Contains(line, "requests_failure_total{")
		if !counter || !strings.Contains(line, `operation="get"`) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

// CountIn counts the replica's log lines that contain every one of `words`.
func (r *Replica) CountIn(words ...string) int {
	n := 0
	for _, line := range strings.Split(r.Log.String(), "\n") {
		all := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}
