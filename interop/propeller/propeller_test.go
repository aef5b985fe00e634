// Package propeller drives live `sensor-connector serve` processes through flytepropeller's own
// connector plugin (flyteplugins v1.16.8, go/tasks/plugins/webapi/connector), loaded through the plugin
// registry so the webapi core, its AutoRefresh cache, resync loop and state codec are flyte's code.
// Only the task execution context (tctx_test.go) is written here.
package propeller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	idlcore "github.com/flyteorg/flyte/flyteidl/gen/pb-go/flyteidl/core"
	"github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery"
	pluginsCore "github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery/core"
	"github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery/ioutils"
	"github.com/flyteorg/flyte/flyteplugins/go/tasks/pluginmachinery/webapi"
	"github.com/flyteorg/flyte/flyteplugins/go/tasks/plugins/webapi/connector"
	"github.com/flyteorg/flyte/flytestdlib/config"
	"github.com/flyteorg/flyte/flytestdlib/contextutils"
	"github.com/flyteorg/flyte/flytestdlib/logger"
	"github.com/flyteorg/flyte/flytestdlib/promutils"
	"github.com/flyteorg/flyte/flytestdlib/promutils/labeled"
	"github.com/flyteorg/flyte/flytestdlib/storage"

	"sensorconnector/interop/harness"
)

// resync is webApi.caching.resyncInterval. The webapi core refuses anything under 5 s
// (minSyncDuration in pluginmachinery/internal/webapi/core.go), so this is the fastest propeller polls.
const resync = 5 * time.Second

// endpointLag is how long after SIGTERM a client watching the Endpoints drops the terminating pod
// (the endpoints controller and the watch take time); the connector's drain period must cover it.
const endpointLag = 1 * time.Second

// slack covers one Get round trip, a Handle round and a slow CI machine.
const slack = 3 * time.Second

type suite struct {
	store *storage.DataStore
	entry pluginsCore.PluginEntry
	ep    *endpoints
	env   []string
	dir   string
	key   harness.SigningKey
	loads atomic.Int32
}

// load builds a plugin instance from the registry entry as propeller's task handler does at start-up;
// cancelling the returned func stops its cache (a propeller restart).
func (h *suite) load(t *testing.T) (pluginsCore.Plugin, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	scope := promutils.NewScope(fmt.Sprintf("interop_load_%d", h.loads.Add(1)))
	p, err := pluginsCore.LoadPlugin(ctx, setupContext{scope: scope}, h.entry)
	if err != nil {
		cancel()
		t.Fatalf("load %s: %v", h.entry.ID, err)
	}
	t.Cleanup(cancel)
	return p, cancel
}

// round is one propeller evaluation of the task: Handle, then keep the state it wrote.
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

// optionalDatetime is an Optional[datetime] value as flytekit sends it: a union holding the datetime variant.
func optionalDatetime(at time.Time) *idlcore.Literal {
	value := &idlcore.Literal{Value: &idlcore.Literal_Scalar{Scalar: &idlcore.Scalar{
		Value: &idlcore.Scalar_Primitive{Primitive: &idlcore.Primitive{
			Value: &idlcore.Primitive_Datetime{Datetime: timestamppb.New(at)}}}}}}
	variant := &idlcore.LiteralType{Type: &idlcore.LiteralType_Simple{Simple: idlcore.SimpleType_DATETIME},
		Structure: &idlcore.TypeStructure{Tag: "datetime"}}
	return &idlcore.Literal{Value: &idlcore.Literal_Scalar{Scalar: &idlcore.Scalar{
		Value: &idlcore.Scalar_Union{Union: &idlcore.Union{Value: value, Type: variant}}}}}
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

// python runs a snippet with the repo's interpreter (SQLite setup; Go has no SQLite without cgo).
func python(t *testing.T, code string, args ...string) {
	t.Helper()
	py := filepath.Join(harness.Venv(t), "bin", "python")
	out, err := exec.Command(py, append([]string{"-c", code}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// newSuite is a suite with its own in-memory store and endpoints under `scheme`; its plugin loads are
// numbered from `loads`, so their metric scopes stay apart from other tests' in the same process.
func newSuite(t *testing.T, scheme string, loads int32) *suite {
	t.Helper()
	level := logger.WarnLevel
	if os.Getenv("INTEROP_DEBUG") != "" {
		level = logger.DebugLevel
	}
	if err := logger.SetConfig(&logger.Config{Level: level}); err != nil {
		t.Fatal(err)
	}
	// As propeller's main does before anything records labeled metrics.
	labeled.SetMetricKeys(contextutils.ProjectKey, contextutils.DomainKey, contextutils.WorkflowIDKey, contextutils.TaskIDKey)
	store, err := storage.NewDataStore(&storage.Config{Type: storage.TypeMemory}, promutils.NewScope(scheme+"_store"))
	if err != nil {
		t.Fatal(err)
	}
	h := &suite{store: store, ep: newEndpoints(scheme), dir: t.TempDir()}
	h.loads.Store(loads)
	return h
}

func TestConnectorPlugin(t *testing.T) {
	h := newSuite(t, "interop", 0)
	dir := h.dir
	db := filepath.Join(dir, "sales.db")
	python(t, "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('create table sales (day text)'); c.commit()", db)
	// The operator grants SqlSensor's database secret (a URL names its own destination: no hosts).
	policy := filepath.Join(dir, "secret-policy.json")
	if err := os.WriteFile(policy, []byte(`{"sales-db-url": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.key = harness.NewSigningKey(t, dir, "key-a")
	h.env = []string{
		"SENSOR_CONNECTOR_HTTP_ALLOW_HOSTS=127.0.0.1",
		"SENSOR_CONNECTOR_SECRET_SALES_DB_URL=sqlite:///" + db,
		"SENSOR_CONNECTOR_SECRET_POLICY=" + policy,
		// A team's own flytekit sensors (tests/fixtures/user_pkg) on the path and allowed, as an
		// operator installs and lists them.
		"PYTHONPATH=" + filepath.Join(harness.RepoRoot(t), "tests", "fixtures", "user_pkg"),
		"SENSOR_CONNECTOR_SENSOR_MODULES=mysensors.markers",
	}
	primary := startReplica(t, "main", h.env, []harness.SigningKey{h.key})
	h.ep.Set(primary.Addr)

	service := registerPlugin(t, h, h.ep.Target())
	if h.entry.ID == "" {
		t.Fatalf("no %q plugin in propeller's plugin registry", connector.ID)
	}
	plugin, _ := h.load(t)
	fileTemplate := loadTemplate(t, filepath.Join(harness.RepoRoot(t), "tests", "vectors", "file_sensor.json"))

	t.Run("discovery", func(t *testing.T) {
		if !slices.Equal(h.entry.RegisteredTaskTypes, []string{"sensor"}) {
			t.Fatalf("registry entry handles %v, want [sensor] from ListAgents", h.entry.RegisteredTaskTypes)
		}
		if !service.ContainTaskType("sensor") {
			t.Fatal("ConnectorService does not list sensor")
		}
		// With no default endpoint, a sensor Create succeeds only if the ListAgents registry routed
		// sensor v0 to the `sensors` deployment.
		if fileTemplate.GetType() != "sensor" || fileTemplate.GetTaskTypeVersion() != 0 {
			t.Fatalf("stock flytekit FileSensor template is %s v%d", fileTemplate.GetType(), fileTemplate.GetTaskTypeVersion())
		}
		tk := h.newTask(t, "discovery", fileTemplate, inputs("path", str(filepath.Join(dir, "never"))))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		if m := tk.meta(t); m.TaskCategory.GetName() != "sensor" || m.TaskCategory.GetVersion() != 0 {
			t.Fatalf("resource_meta category %v", &m.TaskCategory)
		}
		if err := plugin.Abort(context.Background(), h.contextFor(tk)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("lifecycle", func(t *testing.T) {
		// Each sensor: Create, a first Get (RUNNING), the condition made true, SUCCEEDED on a later resync.
		t.Run("FileSensor", func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, "file", "ready.csv")
			tk := h.newTask(t, "file", fileTemplate, inputs("path", str(path)))
			h.rounds(plugin, tk).Meets(t, resync+slack, func() { harness.Touch(t, path) })
		})
		t.Run("GlobSensor", func(t *testing.T) {
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
		t.Run("TimeSensor", func(t *testing.T) {
			t.Parallel()
			tmpl := loadTemplate(t, filepath.Join("testdata", "time_sensor.json"))
			at := time.Now().Add(2 * time.Second)
			tk := h.newTask(t, "time", tmpl, inputs("at", optionalDatetime(at)))
			h.until(t, plugin, tk, 2*resync+slack, "Success", is(pluginsCore.PhaseSuccess))
			if now := time.Now(); now.Before(at) {
				t.Fatalf("succeeded at %s, before %s", now, at)
			}
		})
		t.Run("HttpSensor", func(t *testing.T) {
			t.Parallel()
			var ready atomic.Bool
			web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if ready.Load() {
					_, _ = w.Write([]byte(`{"status": "ready"}`))
				} else {
					_, _ = w.Write([]byte(`{"status": "starting"}`))
				}
			}))
			defer web.Close()
			tmpl := loadTemplate(t, filepath.Join("testdata", "http_sensor.json"))
			tk := h.newTask(t, "http", tmpl, inputs("url", str(web.URL+"/health")))
			h.rounds(plugin, tk).Meets(t, resync+slack, func() { ready.Store(true) })
			status := h.outputsOf(t, tk).GetLiterals()["status"].GetScalar().GetPrimitive().GetInteger()
			if status != 200 {
				t.Fatalf("outputs status %d, want 200", status)
			}
		})
		t.Run("UserSensor", func(t *testing.T) {
			// A BaseSensor subclass written as flytekit's docs show, serialized by stock flytekit.
			t.Parallel()
			tmpl := loadTemplate(t, filepath.Join(harness.RepoRoot(t), "tests", "vectors", "user_marker.json"))
			path := filepath.Join(dir, "user", "ready")
			tk := h.newTask(t, "user", tmpl, inputs("path", str(path)))
			h.rounds(plugin, tk).Meets(t, resync+slack, func() { harness.Touch(t, path) })
		})
		t.Run("UserSensorRaising", func(t *testing.T) {
			// Its poke raises until the path exists: a RUNNING phase each round, never a Get error.
			t.Parallel()
			tmpl := loadTemplate(t, filepath.Join(harness.RepoRoot(t), "tests", "vectors", "user_table.json"))
			delete(tmpl.GetCustom().GetFields(), "sensor_config") // no deadline: it waits for the path
			path := filepath.Join(dir, "user", "service")
			tk := h.newTask(t, "user_raising", tmpl, inputs("path", str(path)))
			h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
			h.until(t, plugin, tk, resync+slack, "Running again", is(pluginsCore.PhaseRunning))
			harness.Touch(t, path)
			h.until(t, plugin, tk, resync+slack, "Success", is(pluginsCore.PhaseSuccess))
		})
		t.Run("SqlSensor", func(t *testing.T) {
			t.Parallel()
			tmpl := loadTemplate(t, filepath.Join("testdata", "sql_sensor.json"))
			query := "select count(*) > 0 from sales where day = '2026-11-24'"
			tk := h.newTask(t, "sql", tmpl, inputs("query", str(query)))
			h.rounds(plugin, tk).Meets(t, resync+slack, func() {
				python(t, "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"insert into sales values ('2026-11-24')\"); c.commit()", db)
			})
		})
	})

	t.Run("permanent_failure", func(t *testing.T) {
		tk := h.newTask(t, "fail", fileTemplate, inputs("path", str("nosuchproto://bucket/key")))
		info := h.until(t, plugin, tk, resync+slack, "PermanentFailure", is(pluginsCore.PhasePermanentFailure))
		e := info.Err()
		want := "failed to run the job: nosuchproto://bucket/key: unknown protocol 'nosuchproto'."
		if e.GetKind() != idlcore.ExecutionError_USER || e.GetMessage() != want {
			t.Fatalf("got %s %q, want USER %q", e.GetKind(), e.GetMessage(), want)
		}
	})

	t.Run("abort_is_idempotent", func(t *testing.T) {
		tk := h.newTask(t, "abort", fileTemplate, inputs("path", str(filepath.Join(dir, "abort", "never"))))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		before := primary.CountIn("deleted sensor")
		for i := 0; i < 2; i++ {
			if err := plugin.Abort(context.Background(), h.contextFor(tk)); err != nil {
				t.Fatalf("abort %d: %v", i+1, err)
			}
		}
		if err := plugin.Finalize(context.Background(), h.contextFor(tk)); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 5*time.Second, "two DeleteTask calls in the connector's log", func() (bool, string) {
			n := primary.CountIn("deleted sensor") - before
			return n == 2, fmt.Sprintf("%d", n)
		})
	})

	t.Run("state_survives_rounds_and_restart", func(t *testing.T) {
		path := filepath.Join(dir, "restart", "ready")
		tk := h.newTask(t, "restart", fileTemplate, inputs("path", str(path)))
		first, stop := h.load(t)
		h.until(t, first, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		meta := tk.meta(t)
		if len(meta.ConnectorResourceMeta) == 0 || meta.OutputPrefix != string(tk.outputs) {
			t.Fatalf("saved meta %+v", meta)
		}
		t.Logf("plugin state: %d bytes (resource_meta %d bytes)", tk.state.Len(), len(meta.ConnectorResourceMeta))
		// Rounds across a resync: the saved resource_meta is the same bytes each time.
		across := harness.For(resync + time.Second)
		h.rounds(first, tk).While(t, resync+slack, "rounds across a resync", func() (bool, string) {
			if got := tk.meta(t).ConnectorResourceMeta; string(got) != string(meta.ConnectorResourceMeta) {
				t.Fatal("resource_meta changed between rounds")
			}
			return across()
		})
		// Propeller restarts: the old cache is gone, a new plugin instance starts from the saved state.
		stop()
		second, _ := h.load(t)
		harness.Touch(t, path)
		h.until(t, second, tk, resync+slack, "Success", is(pluginsCore.PhaseSuccess))
		if got := tk.meta(t).ConnectorResourceMeta; string(got) != string(meta.ConnectorResourceMeta) {
			t.Fatal("resource_meta changed across the restart")
		}
		tk.state.NoGetErrors(t, tk.name)
	})

	t.Run("tampered_meta_fails_within_one_resync", func(t *testing.T) {
		tk := h.newTask(t, "tamper", fileTemplate, inputs("path", str(filepath.Join(dir, "tamper", "never"))))
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

	t.Run("replica_without_the_key_keeps_the_task_running", func(t *testing.T) {
		path := filepath.Join(dir, "rotation", "ready")
		tk := h.newTask(t, "rotation", fileTemplate, inputs("path", str(path)))
		h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		other := harness.NewSigningKey(t, dir, "key-b")
		stranger := startReplica(t, "stranger", h.env, []harness.SigningKey{other})
		h.ep.Set(stranger.Addr)
		t.Cleanup(func() { h.ep.Set(primary.Addr) })
		harness.Touch(t, path) // a poke would now succeed: RUNNING proves the stranger did not poke
		h.rounds(plugin, tk).While(t, 2*resync+slack, "two Gets answered by the replica without the key", func() (bool, string) {
			n, err := stranger.GetsAnswered()
			if err != nil {
				return false, err.Error()
			}
			return n >= 2, fmt.Sprintf("%v Gets answered", n)
		})
		tk.state.NoGetErrors(t, tk.name)
		if stranger.CountIn(h.key.ID) == 0 {
			t.Fatalf("the replica's log never names key id %s", h.key.ID)
		}
		// The key is added (verify-only, second): that replica pokes, and the task proceeds.
		rotated := startReplica(t, "rotated", h.env, []harness.SigningKey{other, h.key})
		h.ep.Set(rotated.Addr)
		h.until(t, plugin, tk, resync+slack, "Success", is(pluginsCore.PhaseSuccess))
		tk.state.NoGetErrors(t, tk.name)
	})

	t.Run("rolling_restart_without_get_errors", func(t *testing.T) {
		rolling := []string{"--drain-period", "2", "--grace-period", "5", "--max-connection-age", "4"}
		var live []*harness.Replica
		for i := 0; i < 3; i++ {
			live = append(live, spawnReplica(t, fmt.Sprintf("r%d", i), h.env, []harness.SigningKey{h.key}, rolling...))
		}
		for _, r := range live {
			r.Ready(t, serving)
		}
		h.ep.Set(live[0].Addr, live[1].Addr, live[2].Addr)
		t.Cleanup(func() { h.ep.Set(primary.Addr) })

		const n = 24
		tasks := make([]*task, n)
		for i := range tasks {
			tasks[i] = h.newTask(t, "roll", fileTemplate, inputs("path", str(filepath.Join(dir, "roll", fmt.Sprintf("f%02d", i)))))
		}
		for _, tk := range tasks {
			h.until(t, plugin, tk, resync+slack, "Running", is(pluginsCore.PhaseRunning))
		}

		// Propeller's rounds go on through the restart; any Handle error or counted Get failure is kept.
		var mu sync.Mutex
		problems := map[string]string{} // task name → what went wrong (latest)
		phases := make([]pluginsCore.Phase, n)
		stop := make(chan struct{})
		done := make(chan struct{})
		var stopOnce sync.Once
		halt := func() {
			stopOnce.Do(func() { close(stop) })
			<-done
		}
		t.Cleanup(halt) // also when a check below fails the test
		go func() {
			defer close(done)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for i, tk := range tasks {
					mu.Lock()
					terminal := phases[i].IsTerminal()
					mu.Unlock()
					if terminal {
						continue
					}
					info, err := h.round(context.Background(), plugin, tk)
					mu.Lock()
					if err != nil {
						problems[tk.name] = fmt.Sprintf("Handle: %v", err)
					} else {
						phases[i] = info.Phase()
						if s := tk.saved(t); s.SyncFailureCount != 0 {
							problems[tk.name] = fmt.Sprintf("%d Get errors, the last: %s", s.SyncFailureCount, s.ErrorMessage)
						}
					}
					mu.Unlock()
				}
			}
		}()
		check := func(when string) {
			mu.Lock()
			defer mu.Unlock()
			if len(problems) > 0 {
				var lines []string
				for name, p := range problems {
					lines = append(lines, name+": "+p)
				}
				sort.Strings(lines)
				t.Fatalf("%s: %d of %d tasks saw errors:\n%s", when, len(problems), n, strings.Join(lines, "\n"))
			}
		}

		start := time.Now()
		for i, old := range live {
			next := startReplica(t, fmt.Sprintf("r%d-new", i), h.env, []harness.SigningKey{h.key}, rolling...)
			h.ep.Add(next.Addr)
			harness.Eventually(t, resync+slack, "the new replica "+next.Name+" answers Gets", func() (bool, string) {
				got, err := next.GetsAnswered()
				if err != nil {
					return false, err.Error()
				}
				return got > 0, "none yet"
			})
			// As Kubernetes does: the pod gets SIGTERM and leaves the Endpoints at the same moment, but
			// clients watching the Endpoints learn it a little later.
			old.Terminate(t)
			time.Sleep(endpointLag) // models the watch delay; not a synchronisation
			h.ep.Remove(old.Addr)
			old.WaitExit(t, 20*time.Second)
			live[i] = next
			check("after replacing " + old.Name)
		}
		t.Logf("rolling restart of 3 replicas took %s (resync %s)", time.Since(start).Round(time.Millisecond), resync)
		// One more resync served entirely by the new replicas.
		base := 0.0
		for _, r := range live {
			got, _ := r.GetsAnswered()
			base += got
		}
		harness.Eventually(t, resync+slack, "a full resync on the new replicas", func() (bool, string) {
			total := 0.0
			for _, r := range live {
				got, err := r.GetsAnswered()
				if err != nil {
					return false, err.Error()
				}
				total += got
			}
			return total-base >= n, fmt.Sprintf("%v Gets", total-base)
		})
		check("after the restart")

		// Half the conditions come true: those tasks succeed, the others keep running.
		for i := 0; i < n; i += 2 {
			harness.Touch(t, filepath.Join(dir, "roll", fmt.Sprintf("f%02d", i)))
		}
		harness.Eventually(t, resync+slack, "the met half succeeded", func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			ok := 0
			for i := 0; i < n; i += 2 {
				if phases[i] == pluginsCore.PhaseSuccess {
					ok++
				}
			}
			return ok == n/2, fmt.Sprintf("%d of %d", ok, n/2)
		})
		halt()
		check("at the end")
		for i, tk := range tasks {
			want := pluginsCore.PhaseRunning
			if i%2 == 0 {
				want = pluginsCore.PhaseSuccess
			}
			if phases[i] != want {
				t.Errorf("%s: %s, want %s", tk.name, phases[i], want)
			}
			if s := tk.saved(t); s.SyncFailureCount != 0 {
				t.Errorf("%s: %d Get errors: %s", tk.name, s.SyncFailureCount, s.ErrorMessage)
			}
			if want == pluginsCore.PhaseRunning {
				if err := plugin.Abort(context.Background(), h.contextFor(tk)); err != nil {
					t.Errorf("%s: abort: %v", tk.name, err)
				}
			}
		}
	})
}

// registerPlugin configures propeller's connector-service section as an operator would (our connector
// only under `connectors`, no default endpoint, no connectorForTaskTypes, no supportedTaskTypes, so
// routing can only come from ListAgents), registers the real plugin, keeps its registry entry in h and
// returns the plugin's connector service.
// The last registration wins, so each test's harness gets a plugin routed to its own target.
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
	return service
}
