package propeller

// Live `sensor-connector serve` processes and the endpoint list propeller's gRPC client resolves.

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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
)

// repoRoot is the repository this module lives in (interop/propeller is two levels down).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// venv is the repo's virtualenv ($SENSOR_CONNECTOR_VENV, as dev.py reads it, else ./.venv).
func venv(t *testing.T) string {
	t.Helper()
	if v := os.Getenv("SENSOR_CONNECTOR_VENV"); v != "" {
		return v
	}
	return filepath.Join(repoRoot(t), ".venv")
}

// connectorBinary is the virtualenv's entry point.
func connectorBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(venv(t), "bin", "sensor-connector")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `python3 dev.py install` at the repository root first", bin)
	}
	return bin
}

// signingKey is a key file as an operator would mount it, with the id the connector derives from it.
type signingKey struct {
	path string
	id   string
}

func newSigningKey(t *testing.T, dir, name string) signingKey {
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
	return signingKey{path: path, id: hex.EncodeToString(sum[:])[:8]}
}

// logBuffer keeps a process's output for assertions and failure reports.
type logBuffer struct {
	mu   sync.Mutex
	text strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.text.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.text.String()
}

// replica is one `sensor-connector serve` process on a loopback port.
type replica struct {
	name        string
	addr        string
	metricsAddr string
	cmd         *exec.Cmd
	log         *logBuffer
	exited      chan struct{}
	exitErr     error
}

var listeningRe = regexp.MustCompile(`listening on 127\.0\.0\.1:(\d+)`)

// freePort is a loopback port nobody listened on a moment ago (for the metrics endpoint, which has no port 0).
// nextPort is the last port freePort handed out; it starts at a place of its own per test process.
var nextPort atomic.Int32

// freePort returns a port free now and never returned before, below the kernel's ephemeral range
// (32768 and up): a port the kernel picks for bind(0) or an outgoing connection could be handed
// to someone else between the check here and the replica binding it.
func freePort(t *testing.T) int {
	t.Helper()
	nextPort.CompareAndSwap(0, int32(20000+(os.Getpid()*37)%10000))
	for {
		port := int(nextPort.Add(1))
		if port >= 32768 {
			t.Fatal("freePort: no free port left below the ephemeral range")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken by something else: try the next one
		}
		_ = l.Close()
		return port
	}
}

// spawnReplica starts `sensor-connector serve` with the given key files (the first signs) and extra
// options, without waiting for it. It is killed at test cleanup if still running.
func spawnReplica(t *testing.T, name string, env []string, keys []signingKey, extra ...string) *replica {
	t.Helper()
	metricsPort := freePort(t)
	// The sensors' files live under t.TempDir(), in the system's temporary directory: a local root.
	args := []string{"serve", "--host", "127.0.0.1", "--port", "0",
		"--metrics-port", strconv.Itoa(metricsPort), "--log-level", "INFO", "--local-roots", os.TempDir()}
	for _, k := range keys {
		args = append(args, "--signing-key-file", k.path)
	}
	args = append(args, extra...)
	cmd := exec.Command(connectorBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	r := &replica{name: name, cmd: cmd, log: &logBuffer{}, exited: make(chan struct{}),
		metricsAddr: fmt.Sprintf("127.0.0.1:%d", metricsPort)}
	cmd.Stdout = r.log
	cmd.Stderr = r.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		r.exitErr = cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			_ = cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("--- log of replica %s ---\n%s", name, r.log.String())
		}
	})
	return r
}

// startReplica spawns a replica and waits until it serves.
func startReplica(t *testing.T, name string, env []string, keys []signingKey, extra ...string) *replica {
	t.Helper()
	r := spawnReplica(t, name, env, keys, extra...)
	r.ready(t)
	return r
}

// ready waits until the replica listens and its health check answers SERVING.
func (r *replica) ready(t *testing.T) {
	t.Helper()
	name := r.name
	eventually(t, 60*time.Second, "replica "+name+" listening", func() (bool, string) {
		select {
		case <-r.exited:
			t.Fatalf("replica %s exited before listening (%v):\n%s", name, r.exitErr, r.log.String())
		default:
		}
		if m := listeningRe.FindStringSubmatch(r.log.String()); m != nil {
			r.addr = "127.0.0.1:" + m[1]
			return true, ""
		}
		return false, "no 'listening on' line yet"
	})
	r.waitServing(t, 30*time.Second)
}

// waitServing polls the standard health service until the replica answers SERVING.
func (r *replica) waitServing(t *testing.T, within time.Duration) {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	eventually(t, within, fmt.Sprintf("replica %s health SERVING", r.name), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return false, err.Error()
		}
		return res.GetStatus() == healthpb.HealthCheckResponse_SERVING, res.GetStatus().String()
	})
}

// terminate sends SIGTERM (what the kubelet sends) without waiting.
func (r *replica) terminate(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", r.name, err)
	}
}

// waitExit waits for the process to end by itself and requires a clean exit.
func (r *replica) waitExit(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-r.exited:
		if r.exitErr != nil {
			t.Errorf("replica %s exited with %v", r.name, r.exitErr)
		}
	case <-time.After(within):
		t.Fatalf("replica %s still running %s after SIGTERM", r.name, within)
	}
}

// getsAnswered is the number of GetTask calls the replica answered (with a response or an error),
// from its Prometheus endpoint.
func (r *replica) getsAnswered() (float64, error) {
	res, err := http.Get("http://" + r.metricsAddr + "/metrics")
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

// countIn counts the log lines of the replica that contain every one of `words`.
func (r *replica) countIn(words ...string) int {
	n := 0
	for _, line := range strings.Split(r.log.String(), "\n") {
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

// endpoints is the address list behind one gRPC target, as Kubernetes Endpoints are for a Service:
// a resolver.Builder that pushes every change to all client connections built on it (the plugin opens
// one connection for its calls and a fresh one for each ListAgents poll).
type endpoints struct {
	scheme string
	mu     sync.Mutex
	addrs  []string
	conns  map[*endpointWatch]struct{}
}

type endpointWatch struct {
	e  *endpoints
	cc resolver.ClientConn
}

func newEndpoints(scheme string) *endpoints {
	e := &endpoints{scheme: scheme, conns: map[*endpointWatch]struct{}{}}
	resolver.Register(e)
	return e
}

func (e *endpoints) Scheme() string { return e.scheme }

// Target is the endpoint string propeller's config names.
func (e *endpoints) Target() string { return e.scheme + ":///connectors" }

func (e *endpoints) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	w := &endpointWatch{e: e, cc: cc}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.conns[w] = struct{}{}
	_ = cc.UpdateState(e.stateLocked())
	return w, nil
}

func (e *endpoints) stateLocked() resolver.State {
	s := resolver.State{}
	for _, a := range e.addrs {
		s.Endpoints = append(s.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
		s.Addresses = append(s.Addresses, resolver.Address{Addr: a})
	}
	return s
}

// Set replaces the address list and tells every connection.
func (e *endpoints) Set(addrs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addrs = append([]string(nil), addrs...)
	for w := range e.conns {
		_ = w.cc.UpdateState(e.stateLocked())
	}
}

// Add and Remove change one address.
func (e *endpoints) Add(addr string) {
	e.mu.Lock()
	addrs := append(append([]string(nil), e.addrs...), addr)
	e.mu.Unlock()
	e.Set(addrs...)
}

func (e *endpoints) Remove(addr string) {
	e.mu.Lock()
	var addrs []string
	for _, a := range e.addrs {
		if a != addr {
			addrs = append(addrs, a)
		}
	}
	e.mu.Unlock()
	e.Set(addrs...)
}

func (w *endpointWatch) ResolveNow(resolver.ResolveNowOptions) {}

func (w *endpointWatch) Close() {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	delete(w.e.conns, w)
}

// eventually polls `check` until it reports done or `within` passes; the last reason is in the failure.
func eventually(t *testing.T, within time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		done, why := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %s)", what, within, why)
		}
		<-tick.C
	}
}
