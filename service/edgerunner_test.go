package service

import "testing"

// TestEdgeRunnerQueue: the queue is bounded, an order waiting is not
// queued twice, and one asked for while running is run again after, never
// queued beside itself.
func TestEdgeRunnerQueue(t *testing.T) {
	r := newEdgeRunner(EdgeConfig{Queue: 2})
	if r.cfg.Workers != 2 || r.cfg.ApplyTimeout <= 0 {
		t.Fatalf("defaults: %+v", r.cfg)
	}
	if !r.enqueue("a") || !r.enqueue("a") || !r.enqueue("b") {
		t.Fatal("enqueue refused below the bound")
	}
	if len(r.queue) != 2 {
		t.Fatalf("queue holds %d, want 2 (a once, b)", len(r.queue))
	}
	if r.enqueue("c") {
		t.Fatal("a full queue took c")
	}
	if r.busy("c") || !r.busy("a") {
		t.Fatal("busy")
	}
	// a is taken by a worker, then asked for again while it runs.
	id := <-r.queue
	r.mu.Lock()
	delete(r.queued, id)
	r.running[id] = true
	r.mu.Unlock()
	if !r.enqueue("a") || len(r.queue) != 1 || !r.again["a"] || !r.isRunning("a") {
		t.Fatalf("a while running: queue %d, again %v", len(r.queue), r.again)
	}
	if q, _ := r.snapshotMetrics(); q != 1 {
		t.Fatalf("queue metric %d", q)
	}
	var nilRunner *edgeRunner
	if nilRunner.busy("a") {
		t.Fatal("a nil runner is busy")
	}
}
