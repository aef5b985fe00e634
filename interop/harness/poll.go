package harness

// The executor's loop over one task, for any Flyte version's PhaseInfo.

import (
	"fmt"
	"testing"
	"time"
)

// Rounds is one task under one plugin instance as a suite sees it: R is its Flyte version's PhaseInfo.
type Rounds[R any] struct {
	Name     string            // the task's, for failures
	Round    func() (R, error) // one executor round: Handle, then keep the state written
	Terminal func(R) bool      // whether the phase is final
	Describe func(R) string    // phase, reason and error, for failures
	Running  func(R) bool      // whether the phase is Running
	Success  func(R) bool      // whether the phase is Success
}

// Until runs rounds until `want` holds and returns that round's result; a terminal phase that is not
// wanted fails at once.
func (r Rounds[R]) Until(t testing.TB, within time.Duration, what string, want func(R) bool) R {
	t.Helper()
	var last R
	Eventually(t, within, r.Name+": "+what, func() (bool, string) {
		info, err := r.Round()
		if err != nil {
			t.Fatalf("%s: Handle: %v", r.Name, err)
		}
		last = info
		if want(info) {
			return true, ""
		}
		if r.Terminal(info) {
			t.Fatalf("%s: %s, waiting for %s", r.Name, r.Describe(info), what)
		}
		return false, r.Describe(info)
	})
	return last
}

// While runs rounds, every one of which must answer Running, until `done` says so.
func (r Rounds[R]) While(t testing.TB, within time.Duration, what string, done func() (bool, string)) {
	t.Helper()
	Eventually(t, within, r.Name+": "+what, func() (bool, string) {
		info, err := r.Round()
		if err != nil || !r.Running(info) {
			t.Fatalf("round: %v %s", err, r.Describe(info))
		}
		return done()
	})
}

// Meets is a sensor's life: rounds until Running, then `meet` makes its condition true, then rounds
// until Success, each within `within`. It returns the first Running answer (what the console shows).
func (r Rounds[R]) Meets(t testing.TB, within time.Duration, meet func()) R {
	t.Helper()
	info := r.Until(t, within, "Running", r.Running)
	meet()
	r.Until(t, within, "Success", r.Success)
	return info
}

// For is a `done` for While: true once d has passed from now.
func For(d time.Duration) func() (bool, string) {
	end := time.Now().Add(d)
	return func() (bool, string) { return time.Now().After(end), "still rounding" }
}

// Describe is a phase, its reason and its execution error (if any) in one line.
func Describe(phase, reason string, failed bool, kind, code, message string) string {
	s := phase
	if reason != "" {
		s += " (" + reason + ")"
	}
	if failed {
		s += fmt.Sprintf(" [%s %s: %s]", kind, code, message)
	}
	return s
}
