package flyte2

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"sensorconnector/interop/harness"
)

// TestSharedFileSensor runs a FileSensor through Flyte 2's plugin against the connector at
// $SENSOR_CONNECTOR_ENDPOINT (host:port) when set, else against one it starts. scripts/ci-interop-flyte2.sh
// sets it so that one server answers this and interop/propeller's TestSharedFileSensor (Flyte 1) in one run.
func TestSharedFileSensor(t *testing.T) {
	h := setUp(t)
	dir := t.TempDir()
	target := os.Getenv("SENSOR_CONNECTOR_ENDPOINT")
	if target == "" {
		target = startReplica(t, "shared", nil, harness.NewSigningKey(t, dir, "signing.key")).Addr
	} else {
		harness.WaitServing(t, target, 30*time.Second, serving)
	}
	registerPlugin(t, h, target)
	plugin, _ := h.load(t)
	path := filepath.Join(dir, "shared", "ready.csv")
	tk := h.newTask(t, "shared", fileTemplate(t), inputs("path", str(path)))
	h.rounds(plugin, tk).Meets(t, resync+slack, func() { harness.Touch(t, path) })
	tk.state.NoGetErrors(t, tk.name)
	t.Logf("Flyte 2 FileSensor succeeded through %s", target)
}
