package harness

// The plugin state an executor keeps for a task between rounds, as both Flyte versions' webapi cores
// persist it. StateReader and StateWriter have the method sets of pluginsCore.PluginStateReader and
// PluginStateWriter in either version (their signatures use only built-in types).

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// PluginState mirrors the webapi core's persisted State field by field (gob matches by name), so a test
// can read what the plugin itself saved: the resource_meta and the count of failed Gets.
type PluginState struct {
	Phase                           int
	PhaseVersion                    uint32
	ResourceMeta                    interface{}
	SyncFailureCount                int
	AllocationTokenRequestStartTime time.Time
	ErrorMessage                    string
}

// Codec is the executor's state codec (propeller's codex.GobStateCodec has this method set).
type Codec interface {
	Encode(v interface{}, w io.Writer) error
	Decode(r io.Reader, v interface{}) error
}

// GobCodec is encoding/gob, as Flyte 2's executor keeps plugin state.
type GobCodec struct{}

func (GobCodec) Encode(v interface{}, w io.Writer) error { return gob.NewEncoder(w).Encode(v) }
func (GobCodec) Decode(r io.Reader, v interface{}) error { return gob.NewDecoder(r).Decode(v) }

// State is one task's plugin state bytes and version; safe for concurrent rounds and reads.
type State struct {
	codec   Codec
	mu      sync.Mutex
	raw     []byte
	version uint8
}

// NewState is an empty state kept with `codec`.
func NewState(codec Codec) *State { return &State{codec: codec} }

// Len is the size of the saved state in bytes.
func (s *State) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.raw)
}

// Saved decodes what the plugin saved (zero before its first round).
func (s *State) Saved(t testing.TB, name string) PluginState {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var p PluginState
	if s.raw == nil {
		return p
	}
	if err := s.codec.Decode(bytes.NewReader(s.raw), &p); err != nil {
		t.Fatalf("decode plugin state of %s: %v", name, err)
	}
	return p
}

// NoGetErrors fails the test if the plugin counted failed GetTask calls for the task.
func (s *State) NoGetErrors(t testing.TB, name string) {
	t.Helper()
	if p := s.Saved(t, name); p.SyncFailureCount != 0 {
		t.Fatalf("%s: %d GetTask errors (the last: %s)", name, p.SyncFailureCount, p.ErrorMessage)
	}
}

// ResourceMeta is the resource_meta wrapper M that the plugin saved (nil before Create).
func ResourceMeta[M any](t testing.TB, s PluginState, name string) *M {
	t.Helper()
	if s.ResourceMeta == nil {
		return nil
	}
	m, ok := s.ResourceMeta.(M)
	if !ok {
		t.Fatalf("plugin state of %s holds %T, not %T", name, s.ResourceMeta, m)
	}
	return &m
}

// Resume sets p as the saved state, at the version `from` has: a new execution that starts from it.
func (s *State) Resume(t testing.TB, from *State, p PluginState) {
	t.Helper()
	var buf bytes.Buffer
	if err := s.codec.Encode(&p, &buf); err != nil {
		t.Fatal(err)
	}
	from.mu.Lock()
	version := from.version
	from.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw, s.version = buf.Bytes(), version
}

// Round is what one executor round hands the plugin: the state as it is now, and a writer.
func (s *State) Round() (StateReader, *StateWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StateReader{codec: s.codec, raw: s.raw, version: s.version}, &StateWriter{codec: s.codec}
}

// Commit keeps what the plugin wrote, as the executor does at the end of a round.
func (s *State) Commit(w *StateWriter) {
	if !w.written {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw, s.version = w.raw, w.version
}

// StateReader is a pluginsCore.PluginStateReader over a round's state.
type StateReader struct {
	codec   Codec
	raw     []byte
	version uint8
}

func (r StateReader) GetStateVersion() uint8 { return r.version }

func (r StateReader) Get(v interface{}) (uint8, error) {
	if r.raw == nil {
		return r.version, nil
	}
	return r.version, r.codec.Decode(bytes.NewReader(r.raw), v)
}

// StateWriter is a pluginsCore.PluginStateWriter; only the last Put or Reset of a round counts.
type StateWriter struct {
	codec   Codec
	raw     []byte
	version uint8
	written bool
}

func (w *StateWriter) Put(version uint8, v interface{}) error {
	var buf bytes.Buffer
	if err := w.codec.Encode(v, &buf); err != nil {
		return err
	}
	w.raw, w.version, w.written = buf.Bytes(), version, true
	return nil
}

func (w *StateWriter) Reset() error {
	w.raw, w.written = nil, true
	return nil
}

var executions atomic.Int64

// ExecutionName is a name no other execution of this process or a concurrent one has: prefix-label-pid-n.
func ExecutionName(prefix, label string) string {
	return fmt.Sprintf("%s-%s-%d-%d", prefix, label, os.Getpid(), executions.Add(1))
}

// Tamper is s with its resource_meta wrapper (M, as the plugin saved it) changed by alter: the state a
// forger would hand the plugin.
func Tamper[M any](t testing.TB, s PluginState, name string, alter func(*M)) PluginState {
	t.Helper()
	m := ResourceMeta[M](t, s, name)
	if m == nil {
		t.Fatalf("plugin state of %s holds no resource_meta to tamper with", name)
	}
	alter(m)
	s.ResourceMeta = *m
	return s
}
