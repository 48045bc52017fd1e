package deploy

import "testing"

// TestTaskWake: a task's change wakes the polls of that task only, and a
// poll that stops waiting leaves nothing behind (one poll per deploy, on
// a server that runs for months).
func TestTaskWake(t *testing.T) {
	var w taskWake
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	a1, releaseA1 := w.changed("a")
	a2, releaseA2 := w.changed("a")
	b, releaseB := w.changed("b")
	w.wake("a")
	if !closed(a1) || !closed(a2) {
		t.Fatal("a change of task a did not wake its polls")
	}
	if closed(b) {
		t.Fatal("a change of task a woke a poll of task b")
	}
	// After the wake a new poll waits for the next change.
	a3, releaseA3 := w.changed("a")
	if closed(a3) {
		t.Fatal("a new poll of task a is woken by the change before it")
	}
	for _, release := range []func(){releaseA1, releaseA2, releaseB, releaseA3} {
		release()
	}
	if len(w.waits) != 0 {
		t.Fatalf("%d tasks still have waiting polls after every poll left: %v", len(w.waits), w.waits)
	}
	w.wake("c") // no poll: nothing to wake
	if len(w.waits) != 0 {
		t.Fatalf("a wake without polls left %v", w.waits)
	}
}
