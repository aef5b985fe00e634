package propeller

// The only part written here: the task execution context propeller's task handler would build, in
// memory. Everything it hands the plugin (readers, writers, paths, the state codec) is flyte's own.

import (
	"context"
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	idlcore "github.com/flyteorg/flyte/flyteidl/gen/pb-go/flyteidl/core"
	"github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery/catalog"
	pluginsCore "github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery/core"
	"github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery/io"
	"github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery/ioutils"
	"github.com/flyteorg/flyte/flyteplugins/go/tasks/plugins/webapi/connector"
	"github.com/flyteorg/flyte/flytepropeller/pkg/controller/nodes/task/codex"
	"github.com/flyteorg/flyte/flytestdlib/promutils"
	"github.com/flyteorg/flyte/flytestdlib/storage"

	"sensorconnector/interop/harness"
)

// setupContext is what propeller gives a plugin loader: only the metrics scope matters to webapi plugins
// without resource quotas.
type setupContext struct{ scope promutils.Scope }

func (s setupContext) EnqueueOwner() pluginsCore.EnqueueOwner {
	return func(types.NamespacedName) error { return nil }
}
func (s setupContext) OwnerKind() string                                { return "FlyteWorkflow" }
func (s setupContext) MetricsScope() promutils.Scope                    { return s.scope }
func (s setupContext) KubeClient() pluginsCore.KubeClient               { return nil }
func (s setupContext) SecretManager() pluginsCore.SecretManager         { return nil }
func (s setupContext) ResourceRegistrar() pluginsCore.ResourceRegistrar { return nil }

// task is one task execution as propeller keeps it between rounds: its identity, template, inputs and
// the plugin state bytes (in propeller they live in the workflow CRD).
type task struct {
	name     string
	id       *idlcore.TaskExecutionIdentifier
	template *idlcore.TaskTemplate
	inputs   storage.DataReference // prefix holding inputs.pb
	outputs  storage.DataReference // output prefix
	raw      storage.DataReference

	state *harness.State // the plugin state bytes and version
}

// newTask writes the inputs where propeller would and returns a task that has not started.
func (h *suite) newTask(t *testing.T, label string, template *idlcore.TaskTemplate, inputs *idlcore.LiteralMap) *task {
	t.Helper()
	name := harness.ExecutionName("interop", label)
	ctx := context.Background()
	base := storage.DataReference("s3://interop/" + name)
	tk := &task{
		name:     name,
		template: template,
		state:    harness.NewState(codex.GobStateCodec{}),
		id: &idlcore.TaskExecutionIdentifier{
			TaskId: &idlcore.Identifier{ResourceType: idlcore.ResourceType_TASK, Project: "flytesnacks",
				Domain: "development", Name: template.GetId().GetName(), Version: "v1"},
			NodeExecutionId: &idlcore.NodeExecutionIdentifier{NodeId: "n0", ExecutionId: &idlcore.WorkflowExecutionIdentifier{
				Project: "flytesnacks", Domain: "development", Name: name}},
			RetryAttempt: 0,
		},
		inputs:  base + "/inputs",
		outputs: base + "/outputs",
		raw:     base + "/raw",
	}
	paths := ioutils.NewInputFilePaths(ctx, h.store, tk.inputs)
	if inputs == nil {
		inputs = &idlcore.LiteralMap{}
	}
	if err := h.store.WriteProtobuf(ctx, paths.GetInputPath(), storage.Options{}, inputs); err != nil {
		t.Fatal(err)
	}
	return tk
}

// saved decodes the task's plugin state.
func (tk *task) saved(t *testing.T) harness.PluginState {
	t.Helper()
	return tk.state.Saved(t, tk.name)
}

// meta is the connector resource_meta the plugin saved (nil before Create).
func (tk *task) meta(t *testing.T) *connector.ResourceMetaWrapper {
	t.Helper()
	return harness.ResourceMeta[connector.ResourceMetaWrapper](t, tk.saved(t), tk.name)
}

// withState is a new execution (a new name, so a new cache entry) that starts from `s` as its saved state.
func (h *suite) withState(t *testing.T, label string, from *task, s harness.PluginState) *task {
	t.Helper()
	tk := h.newTask(t, label, from.template, nil)
	tk.inputs = from.inputs
	tk.state.Resume(t, from.state, s)
	return tk
}

// execContext is a pluginsCore.TaskExecutionContext for one round of one task.
type execContext struct {
	h      *suite
	tk     *task
	reader harness.StateReader
	writer *harness.StateWriter
}

func (h *suite) contextFor(tk *task) *execContext {
	reader, writer := tk.state.Round()
	return &execContext{h: h, tk: tk, reader: reader, writer: writer}
}

// commit keeps the state the plugin wrote, as the executor does at the end of a round.
func (c *execContext) commit() { c.tk.state.Commit(c.writer) }

func (c *execContext) ResourceManager() pluginsCore.ResourceManager { return nil }
func (c *execContext) SecretManager() pluginsCore.SecretManager     { return nil }
func (c *execContext) TaskRefreshIndicator() pluginsCore.SignalAsync {
	return func(context.Context) {}
}
func (c *execContext) DataStore() *storage.DataStore                    { return c.h.store }
func (c *execContext) PluginStateReader() pluginsCore.PluginStateReader { return c.reader }
func (c *execContext) PluginStateWriter() pluginsCore.PluginStateWriter { return c.writer }
func (c *execContext) TaskReader() pluginsCore.TaskReader               { return taskReader{c.tk} }
func (c *execContext) InputReader() io.InputReader {
	ctx := context.Background()
	return ioutils.NewRemoteFileInputReader(ctx, c.h.store, ioutils.NewInputFilePaths(ctx, c.h.store, c.tk.inputs))
}
func (c *execContext) OutputWriter() io.OutputWriter {
	ctx := context.Background()
	paths := ioutils.NewCheckpointRemoteFilePaths(ctx, c.h.store, c.tk.outputs, ioutils.NewRawOutputPaths(ctx, c.tk.raw), "")
	return ioutils.NewRemoteFileOutputWriter(ctx, c.h.store, paths)
}
func (c *execContext) TaskExecutionMetadata() pluginsCore.TaskExecutionMetadata {
	return execMetadata{c.tk}
}
func (c *execContext) Catalog() catalog.AsyncClient               { return nil }
func (c *execContext) EventsRecorder() pluginsCore.EventsRecorder { return nil }

type taskReader struct{ tk *task }

func (r taskReader) Path(context.Context) (storage.DataReference, error) {
	return storage.DataReference("s3://interop/" + r.tk.name + "/task.pb"), nil
}

func (r taskReader) Read(context.Context) (*idlcore.TaskTemplate, error) { return r.tk.template, nil }

// execMetadata names the execution the way propeller does for a node in project flytesnacks.
type execMetadata struct{ tk *task }

func (m execMetadata) GetOwnerID() types.NamespacedName {
	return types.NamespacedName{Namespace: "flytesnacks-development", Name: m.tk.name}
}
func (m execMetadata) GetTaskExecutionID() pluginsCore.TaskExecutionID { return execID{m.tk} }
func (m execMetadata) GetNamespace() string                            { return "flytesnacks-development" }
func (m execMetadata) GetOwnerReference() metav1.OwnerReference        { return metav1.OwnerReference{} }
func (m execMetadata) GetOverrides() pluginsCore.TaskOverrides         { return nil }
func (m execMetadata) GetLabels() map[string]string {
	return map[string]string{"execution-id": m.tk.name}
}
func (m execMetadata) GetMaxAttempts() uint32            { return 1 }
func (m execMetadata) GetAnnotations() map[string]string { return map[string]string{} }
func (m execMetadata) GetK8sServiceAccount() string      { return "default" }
func (m execMetadata) GetSecurityContext() idlcore.SecurityContext {
	return idlcore.SecurityContext{} //nolint:govet // the interface returns it by value
}
func (m execMetadata) IsInterruptible() bool                          { return false }
func (m execMetadata) GetPlatformResources() *v1.ResourceRequirements { return nil }
func (m execMetadata) GetInterruptibleFailureThreshold() int32        { return 0 }
func (m execMetadata) GetEnvironmentVariables() map[string]string     { return nil }
func (m execMetadata) GetConsoleURL() string                          { return "" }

type execID struct{ tk *task }

func (e execID) GetGeneratedName() string { return e.tk.name }
func (e execID) GetGeneratedNameWith(int, int) (string, error) {
	return e.tk.name, nil
}
func (e execID) GetID() idlcore.TaskExecutionIdentifier {
	// The interface returns it by value: a new value with the same fields, not a copy of the message.
	id := e.tk.id
	return idlcore.TaskExecutionIdentifier{TaskId: id.TaskId, NodeExecutionId: id.NodeExecutionId, RetryAttempt: id.RetryAttempt}
}
func (e execID) GetUniqueNodeID() string { return "n0" }

// loadTemplate reads a TaskTemplate that stock flytekit serialized to protobuf JSON.
func loadTemplate(t *testing.T, path string) *idlcore.TaskTemplate {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl idlcore.TaskTemplate
	if err := protojson.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &tmpl
}
