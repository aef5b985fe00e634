// Package flyte2 drives live `sensor-connector serve` processes through Flyte 2's own connector plugin
// (github.com/flyteorg/flyte/v2 v2.0.43, flyteplugins/go/tasks/plugins/webapi/connector), loaded through
// the plugin registry so the webapi machinery (its resource cache, resync loop and Create/Get/Status/Delete
// calls) is Flyte's code. Only the task execution context (tctx_test.go) is written here.
package flyte2

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flyteorg/flyte/v2/flyteplugins/go/tasks/pluginmachinery"
	pluginsCore "github.com/flyteorg/flyte/v2/flyteplugins/go/tasks/pluginmachinery/core"
	"github.com/flyteorg/flyte/v2/flyteplugins/go/tasks/pluginmachinery/ioutils"
	"github.com/flyteorg/flyte/v2/flyteplugins/go/tasks/pluginmachinery/webapi"
	"github.com/flyteorg/flyte/v2/flyteplugins/go/tasks/plugins/webapi/connector"
	"github.com/flyteorg/flyte/v2/flytestdlib/config"
	"github.com/flyteorg/flyte/v2/flytestdlib/contextutils"
	"github.com/flyteorg/flyte/v2/flytestdlib/logger"
	"github.com/flyteorg/flyte/v2/flytestdlib/promutils"
	"github.com/flyteorg/flyte/v2/flytestdlib/promutils/labeled"
	"github.com/flyteorg/flyte/v2/flytestdlib/storage"
	idlcore "github.com/flyteorg/flyte/v2/gen/go/flyteidl2/core"

	"sensorconnector/interop/harness"
)

// resync is webApi.caching.resyncInterval; the webapi machinery refuses anything under 5 s.
const resync = 5 * time.Second

// slack covers one Get round trip, a Handle round and a slow CI machine.
const slack = 3 * time.Second

type suite struct {
	store *storage.DataStore
	entry pluginsCore.PluginEntry
	loads int
}

// load builds a plugin instance from the registry entry as the executor does at start-up; the returned
// func stops its cache (an executor restart).
func (h *suite) load(t *testing.T) (pluginsCore.Plugin, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.loads++
	scope := promutils.NewScope(fmt.Sprintf("flyte2_%s_%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")), h.loads))
	p, err := pluginsCore.LoadPlugin(ctx, setupContext{scope: scope}, h.entry)
	if err != nil {
		cancel()
		t.Fatalf("load %s: %v", h.entry.ID, err)
	}
	t.Cleanup(cancel)
	return p, cancel
}

// round is one executor evaluation of the task: Handle, then keep the state it wrote.
func (h *suite) round(ctx context.Context, p pluginsCore.Plugin, tk *task) (pluginsCore.PhaseInfo, error) {
	c := h.contextFor(tk)
	tr, err := p.Handle(ctx, c)
	if err != nil {
		return pluginsCore.PhaseInfo{}, err
	}
	c.commit()
	return tr.Info(), nil
}

// rounds is the task under plugin p as the harness polls it.
func (h *suite) rounds(p pluginsCore.Plugin, tk *task) harness.Rounds[pluginsCore.PhaseInfo] {
	return harness.Rounds[pluginsCore.PhaseInfo]{Name: tk.name, Describe: describe,
		Round:    func() (pluginsCore.PhaseInfo, error) { return h.round(context.Background(), p, tk) },
		Terminal: func(i pluginsCore.PhaseInfo) bool { return i.Phase().IsTerminal() },
		Running:  is(pluginsCore.PhaseRunning), Success: is(pluginsCore.PhaseSuccess)}
}

// until runs rounds until `want` holds; a terminal phase that is not wanted fails at once.
func (h *suite) until(t *testing.T, p pluginsCore.Plugin, tk *task, within time.Duration, what string,
	want func(pluginsCore.PhaseInfo) bool) pluginsCore.PhaseInfo {
	t.Helper()
	return h.rounds(p, tk).Until(t, within, what, want)
}

func describe(info pluginsCore.PhaseInfo) string {
	e := info.Err()
	return harness.Describe(info.Phase().String(), info.Reason(), e != nil, e.GetKind().String(), e.GetCode(), e.GetMessage())
}

func is(phase pluginsCore.Phase) func(pluginsCore.PhaseInfo) bool {
	return func(i pluginsCore.PhaseInfo) bool { return i.Phase() == phase }
}

func str(s string) *idlcore.Literal {
	return &idlcore.Literal{Value: &idlcore.Literal_Scalar{Scalar: &idlcore.Scalar{
		Value: &idlcore.Scalar_Primitive{Primitive: &idlcore.Primitive{Value: &idlcore.Primitive_StringValue{StringValue: s}}}}}}
}

func inputs(kv ...interface{}) *idlcore.LiteralMap {
	m := &idlcore.LiteralMap{Literals: map[string]*idlcore.Literal{}}
	for i := 0; i < len(kv); i += 2 {
		m.Literals[kv[i].(string)] = kv[i+1].(*idlcore.Literal)
	}
	return m
}

// outputsOf reads what the plugin wrote through the output writer (outputs.pb under the output prefix).
func (h *suite) outputsOf(t *testing.T, tk *task) *idlcore.LiteralMap {
	t.Helper()
	ctx := context.Background()
	path := ioutils.NewRemoteFileOutputPaths(ctx, h.store, tk.outputs, nil).GetOutputPath()
	var m idlcore.LiteralMap
	if err := h.store.ReadProtobuf(ctx, path, &m); err != nil {
		t.Fatalf("%s: read %s: %v", tk.name, path, err)
	}
	return &m
}

func setUp(t *testing.T) *suite {
	t.Helper()
	level := logger.WarnLevel
	if os.Getenv("INTEROP_DEBUG") != "" {
		level = logger.DebugLevel
	}
	if err := logger.SetConfig(&logger.Config{Level: level}); err != nil {
		t.Fatal(err)
	}
	labeled.SetMetricKeys(contextutils.ProjectKey, contextutils.DomainKey, contextutils.WorkflowIDKey, contextutils.TaskIDKey)
	store, err := storage.NewDataStore(&storage.Config{Type: storage.TypeMemory}, promutils.NewScope("flyte2_store_"+strings.ToLower(t.Name())))
	if err != nil {
		t.Fatal(err)
	}
	return &suite{store: store}
}

// registerPlugin configures the executor's connector-service section as docs/deploy.md tells an operator
// to, except that the connector is named only under `connectors` (no defaultConnector endpoint), so a
// Create reaches it only if ListConnectors routed sensor v0 there: the config's own fallback for
// supportedTaskTypes is the default connector, which has no endpoint here. Registers the real plugin,
// keeps its registry entry in h and returns the plugin's connector service. The last registration wins.
func registerPlugin(t *testing.T, h *suite, target string) *connector.ConnectorService {
	t.Helper()
	cfg := &connector.Config{
		WebAPI: webapi.PluginConfig{
			ReadRateLimiter:  webapi.RateLimiterConfig{QPS: 100, Burst: 100},
			WriteRateLimiter: webapi.RateLimiterConfig{QPS: 100, Burst: 100},
			Caching: webapi.CachingConfig{Size: 1000, ResyncInterval: config.Duration{Duration: resync},
				Workers: 10, MaxSystemFailures: 5},
		},
		DefaultConnector: connector.Deployment{Insecure: true, DefaultTimeout: config.Duration{Duration: 10 * time.Second}},
		ConnectorDeployments: map[string]*connector.Deployment{
			"sensors": {
				Endpoint:             target,
				Insecure:             true,
				DefaultServiceConfig: `{"loadBalancingConfig": [{"round_robin":{}}]}`,
				DefaultTimeout:       config.Duration{Duration: 10 * time.Second},
			},
		},
		ConnectorForTaskTypes: map[string]string{},
		SupportedTaskTypes:    []string{"sensor"},
		PollInterval:          config.Duration{Duration: 10 * time.Second},
	}
	if err := connector.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	service := &connector.ConnectorService{}
	connector.RegisterConnectorPlugin(service)
	for _, e := range pluginmachinery.PluginRegistry().GetCorePlugins() {
		if e.ID == connector.ID {
			h.entry = e
		}
	}
	if h.entry.ID == "" {
		t.Fatalf("no %q plugin in the plugin registry", connector.ID)
	}
	return service
}

func fileTemplate(t *testing.T) *idlcore.TaskTemplate {
	return loadTemplate(t, filepath.Join("testdata", "file_sensor.json"))
}

func TestConnectorPlugin(t *testing.T) {
	h := setUp(t)
	dir := t.TempDir()
	// Every s3:// path of this connector leads to a store nobody answers.
	env := []string{
		"AWS_ENDPOINT_URL=http://" + harness.ClosedPort(t),
		"AWS_ACCESS_KEY_ID=interop", "AWS_SECRET_ACCESS_KEY=interop", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_MAX_ATTEMPTS=1",
		// A team's own flytekit sensors (tests/fixtures/user_pkg) on the path and allowed, as an operator
		// installs and lists them (and as interop/propeller starts its connectors).
		"PYTHONPATH=" + filepath.Join(harness.RepoRoot(t), "tests", "fixtures", "user_pkg"),
		"SENSOR_CONNECTOR_SENSOR_MODULES=mysensors.markers",
	}
	primary := startReplica(t, "primary", env, harness.NewSigningKey(t, dir, "signing.key"))
	service := registerPlugin(t, h, primary.Addr)
	plugin, _ := h.load(t)
	file := fileTemplate(t)

	t.Run("discovery", func(t *testing.T) {
		if !slices.Equal(h.entry.RegisteredTaskTypes, []string{"sensor"}) {
			t.Fatalf("registry entry handles %v, want [sensor]", h.entry.RegisteredTaskTypes)
		}
		if !service.ContainTaskType("sensor") {
			t.Fatal("ConnectorService does not list sensor")
		}
		tk := h.newTask(t, "discovery", file, inputs("path", str(filepath.Join(dir, "never"))))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		m := tk.meta(t)
		if m == nil || len(m.ConnectorResourceMeta) == 0 {
			t.Fatal("no resource_meta saved: Create never reached the connector")
		}
		if m.TaskCategory.GetName() != "sensor" || m.TaskCategory.GetVersion() != 0 {
			t.Fatalf("resource_meta category %v", m.TaskCategory)
		}
		if err := plugin.Abort(context.Background(), h.contextFor(tk)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("FileSensor", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "file", "ready.csv")
		tk := h.newTask(t, "file", file, inputs("path", str(path)))
		info := h.rounds(plugin, tk).Meets(t, resync+slack, func() { harness.Touch(t, path) })
		if got := info.Info().CustomInfo.GetFields()["sensor"].GetStringValue(); got != "FileSensor" {
			t.Fatalf("custom_info names sensor %q", got)
		}
	})

	t.Run("GlobSensor_outputs", func(t *testing.T) {
		t.Parallel()
		tmpl := loadTemplate(t, filepath.Join("testdata", "glob_sensor.json"))
		day := filepath.Join(dir, "day=2026-11-24")
		tk := h.newTask(t, "glob", tmpl, inputs("pattern", str(filepath.Join(day, "*.parquet"))))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		want := []string{filepath.Join(day, "part-0.parquet"), filepath.Join(day, "part-1.parquet")}
		for _, p := range want {
			harness.Touch(t, p)
		}
		harness.Touch(t, filepath.Join(day, "_SUCCESS"))
		h.until(t, plugin, tk, resync+slack, "Success", is(pluginsCore.PhaseSuccess))
		var got []string
		for _, l := range h.outputsOf(t, tk).GetLiterals()["paths"].GetCollection().GetLiterals() {
			got = append(got, strings.TrimPrefix(l.GetScalar().GetPrimitive().GetStringValue(), "file://"))
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Fatalf("outputs paths %v, want %v", got, want)
		}
	})

	t.Run("UserSensor", func(t *testing.T) {
		// A BaseSensor subclass written as flytekit's docs show, serialized by stock flytekit.
		t.Parallel()
		tmpl := loadTemplate(t, filepath.Join("testdata", "user_marker.json"))
		path := filepath.Join(dir, "user", "ready")
		tk := h.newTask(t, "user", tmpl, inputs("path", str(path)))
		info := h.rounds(plugin, tk).Meets(t, resync+slack, func() { harness.Touch(t, path) })
		if got := info.Info().CustomInfo.GetFields()["sensor"].GetStringValue(); got != "mysensors.markers.MarkerSensor" {
			t.Fatalf("custom_info names sensor %q", got)
		}
		tk.state.NoGetErrors(t, tk.name)
	})

	t.Run("UserSensorRaising", func(t *testing.T) {
		// Its poke raises until the path exists: a RUNNING phase each round, never a Get error.
		t.Parallel()
		tmpl := loadTemplate(t, filepath.Join("testdata", "user_table.json"))
		delete(tmpl.GetCustom().GetFields(), "sensor_config") // no deadline of its own: it waits for the path
		path := filepath.Join(dir, "user", "service")
		tk := h.newTask(t, "user_raising", tmpl, inputs("path", str(path)))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		// Rounds across a resync: every one Running, the connector's poke raising each time it is asked.
		h.rounds(plugin, tk).While(t, resync+2*slack, "rounds across a resync", harness.For(resync+time.Second))
		if n := primary.CountIn("TableSensor poke raised ConnectionError", path); n < 2 {
			t.Fatalf("the connector logged %d raising pokes of %s, want one per Get (at least 2)", n, path)
		}
		tk.state.NoGetErrors(t, tk.name)
		harness.Touch(t, path)
		h.until(t, plugin, tk, resync+slack, "Success", is(pluginsCore.PhaseSuccess))
		tk.state.NoGetErrors(t, tk.name)
	})

	t.Run("UserSensor_config_as_written", func(t *testing.T) {
		// Its config class takes only its own fields (from_dict is cls(**d)): the deadline the connector
		// gives a Flyte 2 task that sets none must not reach it, or every poke raises.
		t.Parallel()
		tmpl := loadTemplate(t, filepath.Join("testdata", "user_suffix.json"))
		path := filepath.Join(dir, "user", "suffixed")
		tk := h.newTask(t, "user_suffix", tmpl, inputs("path", str(path)))
		// the config's suffix
		h.rounds(plugin, tk).Meets(t, resync+slack, func() { harness.Touch(t, path+".done") })
		if n := primary.CountIn("SuffixSensor poke raised"); n != 0 {
			t.Fatalf("the connector logged %d raising pokes of SuffixSensor", n)
		}
	})

	t.Run("UserSensor_module_not_allowed", func(t *testing.T) {
		// Flyte 2's plugin makes any Create error a retryable failure: the connector's sentence must reach
		// the user in it, naming the module and the option that allows it.
		t.Parallel()
		tmpl := loadTemplate(t, filepath.Join("testdata", "user_sensor.json"))
		tk := h.newTask(t, "user_refused", tmpl, inputs("table", str("sales")))
		info := h.until(t, plugin, tk, slack, "RetryableFailure", is(pluginsCore.PhaseRetryableFailure))
		e := info.Err()
		want := "failed to create task from connector with rpc error: code = FailedPrecondition desc = " +
			"sensor module 'tests.vectors.user_sensors' is not allowed on this connector; the operator allows " +
			"a module's flytekit sensors with --sensor-modules (SENSOR_CONNECTOR_SENSOR_MODULES, chart value " +
			"sensorModules)."
		if e.GetKind() != idlcore.ExecutionError_USER || e.GetMessage() != want {
			t.Fatalf("got %s %q, want USER %q", e.GetKind(), e.GetMessage(), want)
		}
	})

	t.Run("unsupported_path_fails_permanently", func(t *testing.T) {
		t.Parallel()
		tk := h.newTask(t, "fail", file, inputs("path", str("nosuchproto://bucket/key")))
		info := h.until(t, plugin, tk, resync+slack, "PermanentFailure", is(pluginsCore.PhasePermanentFailure))
		e := info.Err()
		want := "failed to run the job: nosuchproto://bucket/key: unknown protocol 'nosuchproto'."
		if e.GetMessage() != want {
			t.Fatalf("got %s %q, want %q", e.GetKind(), e.GetMessage(), want)
		}
	})

	t.Run("unreachable_store_stays_running", func(t *testing.T) {
		t.Parallel()
		tk := h.newTask(t, "outage", file, inputs("path", str("s3://interop-bucket/incoming/data.csv")))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		before := primary.CountIn("FileSensor", "RUNNING")
		// Rounds across two resyncs: every one Running, no Get counted as failed.
		h.rounds(plugin, tk).While(t, 2*resync+2*slack, "rounds across two resyncs", harness.For(2*resync+time.Second))
		tk.state.NoGetErrors(t, tk.name)
		if after := primary.CountIn("FileSensor", "RUNNING"); after <= before {
			t.Fatalf("the connector logged no new RUNNING answer for the unreachable store (%d, then %d)", before, after)
		}
		if err := plugin.Abort(context.Background(), h.contextFor(tk)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("abort_twice_then_finalize", func(t *testing.T) {
		t.Parallel()
		tk := h.newTask(t, "abort", file, inputs("path", str(filepath.Join(dir, "abort", "never"))))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		task := harness.TaskID(tk.meta(t).ConnectorResourceMeta)
		for i := 0; i < 2; i++ {
			if err := plugin.Abort(context.Background(), h.contextFor(tk)); err != nil {
				t.Fatalf("abort %d: %v", i+1, err)
			}
		}
		if err := plugin.Finalize(context.Background(), h.contextFor(tk)); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 5*time.Second, "two DeleteTask calls in the connector's log", func() (bool, string) {
			n := primary.CountIn("deleted sensor", task)
			return n == 2, fmt.Sprintf("%d", n)
		})
	})

	t.Run("state_round_trip_across_fresh_plugins", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "restart", "ready")
		tk := h.newTask(t, "restart", file, inputs("path", str(path)))
		first, stop := h.load(t)
		h.until(t, first, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		meta := tk.meta(t)
		if len(meta.ConnectorResourceMeta) == 0 || meta.OutputPrefix != string(tk.outputs) {
			t.Fatalf("saved meta %+v", meta)
		}
		t.Logf("plugin state: %d bytes (resource_meta %d bytes)", tk.state.Len(), len(meta.ConnectorResourceMeta))
		stop()
		// A fresh plugin instance (an executor restart) reads the state back and keeps polling.
		second, stopSecond := h.load(t)
		h.until(t, second, tk, resync+slack, "Running again", is(pluginsCore.PhaseRunning))
		stopSecond()
		third, _ := h.load(t)
		harness.Touch(t, path)
		h.until(t, third, tk, resync+slack, "Success", is(pluginsCore.PhaseSuccess))
		if got := tk.meta(t).ConnectorResourceMeta; string(got) != string(meta.ConnectorResourceMeta) {
			t.Fatal("resource_meta changed across the restarts")
		}
		tk.state.NoGetErrors(t, tk.name)
	})

	t.Run("tampered_meta_fails_within_one_resync", func(t *testing.T) {
		t.Parallel()
		tk := h.newTask(t, "tamper", file, inputs("path", str(filepath.Join(dir, "tamper", "never"))))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		forged := harness.Tamper(t, tk.saved(t), tk.name, func(m *connector.ResourceMetaWrapper) {
			m.ConnectorResourceMeta = harness.AlterPayload(t, m.ConnectorResourceMeta)
		})
		bad := h.withState(t, "tampered", tk, forged)
		info := h.until(t, plugin, bad, resync+slack, "PermanentFailure", is(pluginsCore.PhasePermanentFailure))
		msg := info.Err().GetMessage()
		if !strings.Contains(msg, "resource_meta") || !harness.ContainsAny(msg, "signature", "altered", "forged", "verif") {
			t.Fatalf("message %q does not name the problem", msg)
		}
		bad.state.NoGetErrors(t, bad.name)
		if err := plugin.Abort(context.Background(), h.contextFor(tk)); err != nil {
			t.Fatal(err)
		}
	})
}
