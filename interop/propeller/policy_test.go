package propeller

// The sensor policy as propeller's connector plugin sees it: a `deadline` in the template's sensor_config
// reaches the plugin as a permanent (non-retryable) user failure carrying the connector's message, and a
// `soft_fail` deadline as a success whose `met` output is false. Same harness as propeller_test.go, its
// own replica and plugin instance, so it runs alone or after TestConnectorPlugin.

import (
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	idlcore "github.com/flyteorg/flyte/flyteidl/gen/pb-go/flyteidl/core"
	pluginsCore "github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery/core"

	"sensorconnector/interop/harness"
)

// withPolicy is the stock FileSensor template with `policy` as its sensor_config and, if met, the
// boolean output `met` that sensors.flytekit declares for soft_fail.
func withPolicy(t *testing.T, base *idlcore.TaskTemplate, policy map[string]interface{}, met bool) *idlcore.TaskTemplate {
	t.Helper()
	tmpl := proto.Clone(base).(*idlcore.TaskTemplate)
	value, err := structpb.NewStruct(policy)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.Custom.Fields["sensor_config"] = structpb.NewStructValue(value)
	if met {
		tmpl.Interface.Outputs = &idlcore.VariableMap{Variables: map[string]*idlcore.Variable{
			"met": {Type: &idlcore.LiteralType{Type: &idlcore.LiteralType_Simple{Simple: idlcore.SimpleType_BOOLEAN}}},
		}}
	}
	return tmpl
}

func TestPolicyDeadline(t *testing.T) {
	h := newSuite(t, "policy", 1000) // metric scopes apart from TestConnectorPlugin's in the same process
	dir := h.dir
	h.key = harness.NewSigningKey(t, dir, "key-policy")
	h.ep.Set(startReplica(t, "policy", nil, []harness.SigningKey{h.key}).Addr)
	registerPlugin(t, h, h.ep.Target())
	plugin, _ := h.load(t)
	fileTemplate := loadTemplate(t, filepath.Join(harness.RepoRoot(t), "tests", "vectors", "file_sensor.json"))
	const deadline = 2 * time.Second

	t.Run("deadline_is_a_permanent_failure_with_our_message", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "policy", "never")
		tk := h.newTask(t, "deadline", withPolicy(t, fileTemplate, map[string]interface{}{"deadline": 2}, false),
			inputs("path", str(path)))
		started := time.Now()
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		info := h.until(t, plugin, tk, deadline+resync+slack, "PermanentFailure", is(pluginsCore.PhasePermanentFailure))
		if waited := time.Since(started); waited < deadline {
			t.Fatalf("failed after %s, before its %s deadline", waited, deadline)
		}
		e := info.Err()
		want := "failed to run the job: waited 2s for " + path + "; its deadline passed, giving up."
		if e.GetKind() != idlcore.ExecutionError_USER || e.GetMessage() != want {
			t.Fatalf("got %s %q, want USER %q", e.GetKind(), e.GetMessage(), want)
		}
	})

	t.Run("soft_fail_deadline_succeeds_with_met_false", func(t *testing.T) {
		t.Parallel()
		policy := map[string]interface{}{"deadline": 2, "soft_fail": true}
		tk := h.newTask(t, "soft", withPolicy(t, fileTemplate, policy, true), inputs("path", str(filepath.Join(dir, "soft", "never"))))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		h.until(t, plugin, tk, deadline+resync+slack, "Success", is(pluginsCore.PhaseSuccess))
		met := h.outputsOf(t, tk).GetLiterals()["met"]
		if met == nil || met.GetScalar().GetPrimitive().GetBoolean() {
			t.Fatalf("outputs: met = %v, want false", met)
		}
	})
}
