package propeller

import (
	"os"
	"path/filepath"
	"testing"

	pluginsCore "github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery/core"
	"github.com/flyteorg/flyte/flytestdlib/contextutils"
	"github.com/flyteorg/flyte/flytestdlib/promutils"
	"github.com/flyteorg/flyte/flytestdlib/promutils/labeled"
	"github.com/flyteorg/flyte/flytestdlib/storage"
)

// TestSharedFileSensor runs a stock flytekit FileSensor through propeller's plugin against the connector
// at $SENSOR_CONNECTOR_ENDPOINT (host:port) when set, else against one it starts.
// scripts/ci-interop-flyte2.sh sets it so that one server answers this and interop/flyte2's
// TestSharedFileSensor (Flyte 2's plugin) in one run.
func TestSharedFileSensor(t *testing.T) {
	// As propeller's main does before anything records labeled metrics.
	labeled.SetMetricKeys(contextutils.ProjectKey, contextutils.DomainKey, contextutils.WorkflowIDKey, contextutils.TaskIDKey)
	dir := t.TempDir()
	h := &harness{ep: newEndpoints("shared"), dir: dir}
	// Plugin loads name their metrics scope by a count: start past TestConnectorPlugin's in this process.
	h.loads.Store(1 << 20)
	var err error
	h.store, err = storage.NewDataStore(&storage.Config{Type: storage.TypeMemory}, promutils.NewScope("shared_store"))
	if err != nil {
		t.Fatal(err)
	}
	target := os.Getenv("SENSOR_CONNECTOR_ENDPOINT")
	if target == "" {
		h.key = newSigningKey(t, dir, "key-shared")
		target = startReplica(t, "shared", nil, []signingKey{h.key}).addr
	}
	h.ep.Set(target)
	registerPlugin(t, h, h.ep.Target())
	plugin, _ := h.load(t)
	path := filepath.Join(dir, "shared", "ready.csv")
	tk := h.newTask(t, "shared", loadTemplate(t, filepath.Join(repoRoot(t), "tests", "vectors", "file_sensor.json")),
		inputs("path", str(path)))
	h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
	touch(t, path)
	h.until(t, plugin, tk, resync+slack, "Success", is(pluginsCore.PhaseSuccess))
	if n := tk.saved(t).SyncFailureCount; n != 0 {
		t.Fatalf("%d failed Gets", n)
	}
	t.Logf("Flyte 1 FileSensor succeeded through %s", target)
}
