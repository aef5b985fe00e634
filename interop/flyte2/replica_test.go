package flyte2

// Live `sensor-connector serve` processes on loopback, or one given by SENSOR_CONNECTOR_ENDPOINT.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// repoRoot is the repository this module lives in (interop/flyte2 is two levels down).
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

func newSigningKey(t *testing.T, dir string) string {
	t.Helper()
	raw := make([]byte, 48)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "signing.key")
	if err := os.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

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
	addr    string
	log     *logBuffer
	exited  chan struct{}
	exitErr error
}

var listeningRe = regexp.MustCompile(`listening on 127\.0\.0\.1:(\d+)`)

// startReplica starts `sensor-connector serve` on a port of its choosing and waits until it serves.
func startReplica(t *testing.T, env []string, key string) *replica {
	t.Helper()
	bin := filepath.Join(venv(t), "bin", "sensor-connector")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `python3 dev.py install` at the repository root first", bin)
	}
	// The sensors' files live under t.TempDir(), in the system's temporary directory: a local root.
	cmd := exec.Command(bin, "serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
		"--log-level", "INFO", "--signing-key-file", key, "--drain-period", "0", "--grace-period", "1",
		"--local-roots", os.TempDir())
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	r := &replica{log: &logBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
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
			t.Logf("--- connector log ---\n%s", r.log.String())
		}
	})
	eventually(t, 60*time.Second, "connector listening", func() (bool, string) {
		select {
		case <-r.exited:
			t.Fatalf("connector exited before listening (%v):\n%s", r.exitErr, r.log.String())
		default:
		}
		if m := listeningRe.FindStringSubmatch(r.log.String()); m != nil {
			r.addr = "127.0.0.1:" + m[1]
			return true, ""
		}
		return false, "no 'listening on' line yet"
	})
	waitServing(t, r.addr)
	return r
}

// waitServing polls the standard health service until the connector answers SERVING.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	eventually(t, 30*time.Second, "connector health SERVING", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "flyteidl2.connector.AsyncConnectorService"})
		if err != nil {
			return false, err.Error()
		}
		return res.GetStatus() == healthpb.HealthCheckResponse_SERVING, res.GetStatus().String()
	})
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

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("part\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
