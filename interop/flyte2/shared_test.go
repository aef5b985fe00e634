package flyte2

import (
	"os"
	"path/filepath"
	"testing"

	pluginsCore "github.com/flyteorg/flyte/v2/flyteplugins/go/tasks/pluginmachinery/core"
)

// TestSharedFileSensor runs a FileSensor through Flyte 2's plugin against the connector at
// $SENSOR_CONNECTOR_ENDPOINT (host:port) when set, else against one it starts. scripts/ci-interop-flyte2.sh
// sets it so that one server answers this and interop/propeller's TestSharedFileSensor (Flyte 1) in one run.
func TestSharedFileSensor(t *testing.T) {
	h := setUp(t)
	dir := t.TempDir()
	target := os.Getenv("SENSOR_CONNECTOR_ENDPOINT")
	if target == "" {
		target = startReplica(t, nil, newSigningKey(t, dir)).addr
	} else {
		waitServing(t, target)
	}
	registerPlugin(t, h, target)
	plugin, _ := h.load(t)
	path := filepath.Join(dir, "shared", "ready.csv")
	tk := h.newTask(t, "shared", fileTemplate(t), inputs("path", str(path)))
	h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
	touch(t, path)
	h.until(t, plugin, tk, resync+slack, "Success", is(pluginsCore.PhaseSuccess))
	if n := tk.saved(t).SyncFailureCount; n != 0 {
		t.Fatalf("%d failed Gets", n)
	}
	t.Logf("Flyte 2 FileSensor succeeded through %s", target)
}
