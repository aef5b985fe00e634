package propeller

import (
	"os"
	"path/filepath"
	"testing"

	"sensorconnector/interop/harness"
)

// TestSharedFileSensor runs a stock flytekit FileSensor through propeller's plugin against the connector
// at $SENSOR_CONNECTOR_ENDPOINT (host:port) when set, else against one it starts.
// scripts/ci-interop-flyte2.sh sets it so that one server answers this and interop/flyte2's
// TestSharedFileSensor (Flyte 2's plugin) in one run.
func TestSharedFileSensor(t *testing.T) {
	// Plugin loads name their metrics scope by a count: start past TestConnectorPlugin's in this process.
	h := newSuite(t, "shared", 1<<20)
	dir := h.dir
	target := os.Getenv("SENSOR_CONNECTOR_ENDPOINT")
	if target == "" {
		h.key = harness.NewSigningKey(t, dir, "key-shared")
		target = startReplica(t, "shared", nil, []harness.SigningKey{h.key}).Addr
	}
	h.ep.Set(target)
	registerPlugin(t, h, h.ep.Target())
	plugin, _ := h.load(t)
	path := filepath.Join(dir, "shared", "ready.csv")
	tk := h.newTask(t, "shared", loadTemplate(t, filepath.Join(harness.RepoRoot(t), "tests", "vectors", "file_sensor.json")),
		inputs("path", str(path)))
	h.rounds(plugin, tk).Meets(t, resync+slack, func() { harness.Touch(t, path) })
	tk.state.NoGetErrors(t, tk.name)
	t.Logf("Flyte 1 FileSensor succeeded through %s", target)
}
