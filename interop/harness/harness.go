// Package harness is what interop/propeller (Flyte 1) and interop/flyte2 (Flyte 2) share: live
// `sensor-connector serve` processes on loopback, polling, files, signing keys, the plugin-state store a
// task keeps between rounds, and the phase loop. It uses the standard library only, so each suite keeps
// its own dependency set (the two Flyte versions pin different gRPC and protobuf releases); whatever
// touches Flyte's types or gRPC stays in the suite and reaches here as a function or an interface.
package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RepoRoot is the repository the calling suite lives in (interop/<suite> is two levels down).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Venv is the repo's virtualenv ($SENSOR_CONNECTOR_VENV, as dev.py reads it, else ./.venv).
func Venv(t testing.TB) string {
	t.Helper()
	if v := os.Getenv("SENSOR_CONNECTOR_VENV"); v != "" {
		return v
	}
	return filepath.Join(RepoRoot(t), ".venv")
}

// Eventually polls `check` until it reports done or `within` passes; the last reason is in the failure.
func Eventually(t testing.TB, within time.Duration, what string, check func() (bool, string)) {
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

// Touch creates the file (and its directories): a sensor's condition made true.
func Touch(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("part\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ContainsAny tells whether s contains at least one of words.
func ContainsAny(s string, words ...string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
