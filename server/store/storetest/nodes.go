package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

func testNodes(t *testing.T, s store.Store) {
	c := ctx(t)
	a := &store.Node{Name: "a", InstanceID: "i1", Address: "10.0.0.1:3939", Version: "1.0", Schema: 21,
		ConfigDigest: "d1", Settings: map[string]string{"Server.DataDir": "x1"}}
	holder, err := s.RegisterNode(c, a, "", time.Minute)
	must(t, err)
	if holder != nil || a.HeartbeatAt.IsZero() || a.StartedAt.IsZero() {
		t.Fatalf("RegisterNode: holder %v, node %+v", holder, a)
	}
	// The database's clock: within a minute of ours (CI machines agree
	// with their own database).
	if d := time.Since(a.HeartbeatAt); d > time.Minute || d < -time.Minute {
		t.Fatalf("heartbeat %v is %v from now", a.HeartbeatAt, d)
	}
	// A live holder keeps the name against another instance...
	holder, err = s.RegisterNode(c, &store.Node{Name: "a", InstanceID: "i2"}, "", time.Minute)
	wantErr(t, err, store.ErrConflict, "RegisterNode(live name)")
	if holder == nil || holder.InstanceID != "i1" || holder.Address != "10.0.0.1:3939" {
		t.Fatalf("holder = %+v, want instance i1", holder)
	}
	// ... but not against one told to take it over, nor once it is older
	// than deadAfter.
	_, err = s.RegisterNode(c, &store.Node{Name: "a", InstanceID: "i2", Version: "1.1"}, "i1", time.Minute)
	must(t, err)
	time.Sleep(20 * time.Millisecond)
	_, err = s.RegisterNode(c, &store.Node{Name: "a", InstanceID: "i3"}, "", time.Millisecond)
	must(t, err)
	must(t, s.HeartbeatNode(c, "a", "i3", true))
	wantErr(t, s.HeartbeatNode(c, "a", "i2", false), store.ErrNotFound, "HeartbeatNode(replaced instance)")
	_, err = s.RegisterNode(c, &store.Node{Name: "b", InstanceID: "j1", Settings: map[string]string{"k": "v"}}, "", time.Minute)
	must(t, err)

	nodes, err := s.ListNodes(c)
	must(t, err)
	eq(t, "nodes", len(nodes), 2)
	eq(t, "first", nodes[0].Name, "a")
	eq(t, "instance", nodes[0].InstanceID, "i3")
	eq(t, "draining", nodes[0].Draining, true)
	eq(t, "b settings", nodes[1].Settings["k"], "v")
	if nodes[1].Age < 0 || nodes[1].Age > 10*time.Second {
		t.Fatalf("age of a fresh node = %v", nodes[1].Age)
	}

	// DeleteNode: only that instance, only when old enough.
	ok, err := s.DeleteNode(c, "b", "j1", time.Hour)
	must(t, err)
	eq(t, "deleted a live node", ok, false)
	ok, err = s.DeleteNode(c, "b", "other", 0)
	must(t, err)
	eq(t, "deleted another instance's row", ok, false)
	ok, err = s.DeleteNode(c, "b", "j1", 0)
	must(t, err)
	eq(t, "deleted", ok, true)
	nodes, err = s.ListNodes(c)
	must(t, err)
	eq(t, "nodes after delete", len(nodes), 1)

	// FinishNodeJobs ends that node's running jobs only.
	u := mkUser(t, s, "nodeowner", store.RolePublisher)
	ct := mkContent(t, s, u.ID, "nodeapp")
	mine := &store.Job{ContentID: ct.ID, Tag: "run_app", Node: "gone", StartedAt: T0}
	ended := &store.Job{ContentID: ct.ID, Tag: "run_app", Node: "gone", StartedAt: T0}
	other := &store.Job{ContentID: ct.ID, Tag: "run_app", Node: "alive", StartedAt: T0}
	for _, j := range []*store.Job{mine, ended, other} {
		must(t, s.CreateJob(c, j))
	}
	must(t, s.FinishJob(c, ended.Key, 0, "", T0.Add(time.Second)))
	n, err := s.FinishNodeJobs(c, "gone", T0.Add(time.Minute))
	must(t, err)
	eq(t, "jobs finished", n, int64(1))
	got, err := s.Job(c, mine.Key)
	must(t, err)
	eq(t, "ended", got.EndedAt, us(T0.Add(time.Minute)))
	if got.ExitCode != nil {
		t.Fatalf("exit code of a lost process = %v, want none", *got.ExitCode)
	}
	got, err = s.Job(c, other.Key)
	must(t, err)
	if !got.EndedAt.IsZero() {
		t.Fatal("another node's job was ended")
	}

	// FailNodeWork fails that node's deploys, renders, other tasks and
	// jobs, each with its own message, and nothing of another node's.
	lostDeploy := &store.Task{ContentID: ct.ID, Kind: store.TaskDeploy, Node: "lost", CreatedAt: T0}
	lostRenderTask := &store.Task{ContentID: ct.ID, Kind: store.TaskRender, Node: "lost", CreatedAt: T0}
	liveDeploy := &store.Task{ContentID: ct.ID, Kind: store.TaskDeploy, Node: "alive", CreatedAt: T0}
	for _, tk := range []*store.Task{lostDeploy, lostRenderTask, liveDeploy} {
		must(t, s.CreateTask(c, tk))
	}
	lostRender := &store.Render{ContentID: ct.ID, TaskID: lostRenderTask.ID, Status: store.RenderRunning, Node: "lost", CreatedAt: T0, StartedAt: T0}
	liveRender := &store.Render{ContentID: ct.ID, Status: store.RenderQueued, Node: "alive", CreatedAt: T0}
	for _, r := range []*store.Render{lostRender, liveRender} {
		must(t, s.CreateRender(c, r))
	}
	lostJob := &store.Job{ContentID: ct.ID, Tag: "run_app", Node: "lost", StartedAt: T0}
	must(t, s.CreateJob(c, lostJob))
	// The lost node's row goes in the same transaction (as DeleteNode:
	// that instance, only when old enough); a live one's stays.
	_, err = s.RegisterNode(c, &store.Node{Name: "lost", InstanceID: "l1"}, "", time.Minute)
	must(t, err)
	_, err = s.RegisterNode(c, &store.Node{Name: "fresh", InstanceID: "f1"}, "", time.Minute)
	must(t, err)
	failed, err := s.FailNodeWork(c, "fresh", "f1", time.Hour, store.NodeLoss{}, T0)
	must(t, err)
	eq(t, "a node younger than olderThan removed", failed.Removed, false)
	failed, err = s.FailNodeWork(c, "lost", "l1", 0, store.NodeLoss{Deploy: "deploy lost", Render: "render lost", Task: "task lost"}, T0.Add(2*time.Minute))
	must(t, err)
	eq(t, "work failed", failed, store.NodeWorkFailed{Deploys: 1, Renders: 1, Tasks: 1, Jobs: 1, Removed: true})
	nodes, err = s.ListNodes(c)
	must(t, err)
	listed := map[string]bool{}
	for _, x := range nodes {
		listed[x.Name] = true
	}
	if listed["lost"] || !listed["fresh"] {
		t.Fatalf("nodes after FailNodeWork: %v, want fresh listed, lost not", listed)
	}
	for _, want := range []struct {
		id  string
		msg string
	}{{lostDeploy.ID, "deploy lost"}, {lostRenderTask.ID, "task lost"}} {
		tk, err := s.Task(c, want.id)
		must(t, err)
		if !tk.Finished || tk.Code == 0 || tk.Error != want.msg {
			t.Fatalf("lost node's task %s: finished %v code %d error %q, want %q", tk.Kind, tk.Finished, tk.Code, tk.Error, want.msg)
		}
	}
	r, err := s.Render(c, lostRender.ID)
	must(t, err)
	eq(t, "lost render", [2]string{r.Status, r.Error}, [2]string{store.RenderFailed, "render lost"})
	j, err := s.Job(c, lostJob.Key)
	must(t, err)
	eq(t, "lost job ended", j.EndedAt, us(T0.Add(2*time.Minute)))
	tk, err := s.Task(c, liveDeploy.ID)
	must(t, err)
	eq(t, "live node's deploy finished", tk.Finished, false)
	r, err = s.Render(c, liveRender.ID)
	must(t, err)
	eq(t, "live node's render", r.Status, store.RenderQueued)
	if _, err := s.FailNodeWork(c, "", "", 0, store.NodeLoss{}, T0); err == nil {
		t.Fatal("FailNodeWork with no node failed every node's work")
	}

	// The cluster lock runs fn, and frees the lock after it.
	for range 2 {
		ran := false
		held, err := s.WithClusterLock(c, "chores", func(context.Context) error { ran = true; return nil })
		must(t, err)
		if !held || !ran {
			t.Fatalf("WithClusterLock: held %v ran %v", held, ran)
		}
	}
}

// RunClusterLock checks that two Store instances of one PostgreSQL (two
// nodes) never hold the same cluster lock at once, and that different
// locks do not exclude each other.
func RunClusterLock(t *testing.T, a, b store.Store) {
	c := ctx(t)
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := a.WithClusterLock(c, "reaper", func(context.Context) error {
			close(inside)
			<-release
			return nil
		})
		done <- err
	}()
	<-inside
	ran := false
	held, err := b.WithClusterLock(c, "reaper", func(context.Context) error { ran = true; return nil })
	must(t, err)
	if held || ran {
		t.Fatalf("second node got the lock another holds: held %v ran %v", held, ran)
	}
	held, err = b.WithClusterLock(c, "chores", func(context.Context) error { return nil })
	must(t, err)
	eq(t, "another lock while reaper is held", held, true)
	close(release)
	must(t, <-done)
	held, err = b.WithClusterLock(c, "reaper", func(context.Context) error { return nil })
	must(t, err)
	eq(t, "the lock after its holder let go", held, true)
}
