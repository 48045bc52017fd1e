package api

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// The server's nodes and load, for administrators (the dashboard's
// server and load pages): dais's own endpoints, Connect has none.

type nodeJSON struct {
	Name         string    `json:"name"`
	Address      string    `json:"address"`
	Version      string    `json:"version"`
	StartedTime  time.Time `json:"started_time"`
	HeartbeatAge float64   `json:"heartbeat_age_seconds"`
	Draining     bool      `json:"draining"`
	This         bool      `json:"this_node"`
}

// listNodes is GET /__api__/v1/system/nodes: the nodes registered in the
// database (one server alone with SQLite registers none).
func (a *API) listNodes(w http.ResponseWriter, r *http.Request) error {
	nodes, err := a.st.ListNodes(r.Context())
	if err != nil {
		return err
	}
	out := make([]nodeJSON, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, nodeJSON{Name: n.Name, Address: n.Address, Version: n.Version, StartedTime: n.StartedAt.UTC(),
			HeartbeatAge: n.Age.Seconds(), Draining: n.Draining, This: n.Name == a.dep.Node()})
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

type loadProcessJSON struct {
	ContentGUID  string    `json:"content_guid"`
	ContentName  string    `json:"content_name"`
	ContentTitle string    `json:"content_title"`
	JobKey       string    `json:"job_key"`
	PID          int       `json:"pid"`
	Tag          string    `json:"tag"`
	Hostname     string    `json:"hostname"`
	StartTime    time.Time `json:"start_time"`
	// MemoryBytes is the resident memory of the process and its
	// descendants; null for a process on another node.
	MemoryBytes *int64 `json:"memory_bytes"`
}

type loadJSON struct {
	Node string `json:"node"`
	// The machine's memory as this node sees it (/proc/meminfo; a
	// container sees its host's).
	MemoryTotalBytes     int64             `json:"memory_total_bytes"`
	MemoryAvailableBytes int64             `json:"memory_available_bytes"`
	ServerMemoryBytes    int64             `json:"server_memory_bytes"` // this dais process
	Processes            []loadProcessJSON `json:"processes"`
}

// getLoad is GET /__api__/v1/system/load: every content process running
// (apps, APIs, renders; on any node), with its memory when it runs on this
// node, and this node's memory.
func (a *API) getLoad(w http.ResponseWriter, r *http.Request) error {
	jobs, err := a.st.RunningJobs(r.Context())
	if err != nil {
		return err
	}
	out := loadJSON{Node: a.dep.Node(), Processes: []loadProcessJSON{}, ServerMemoryBytes: treeRSS(os.Getpid(), false)}
	out.MemoryTotalBytes, out.MemoryAvailableBytes = memInfo()
	contents := map[int64]*store.Content{}
	for _, j := range jobs {
		c, ok := contents[j.ContentID]
		if !ok {
			c, err = a.st.Content(r.Context(), j.ContentID)
			if err != nil {
				c = nil // deleted meanwhile
			}
			contents[j.ContentID] = c
		}
		if c == nil {
			continue
		}
		p := loadProcessJSON{ContentGUID: c.GUID, ContentName: c.Name, ContentTitle: c.Title, JobKey: j.Key, PID: j.PID,
			Tag: j.Tag, Hostname: j.Node, StartTime: j.StartedAt.UTC()}
		if j.Node == a.dep.Node() && j.PID > 0 {
			if m := treeRSS(j.PID, true); m > 0 {
				p.MemoryBytes = &m
			}
		}
		out.Processes = append(out.Processes, p)
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// treeRSS is the resident memory of process pid (and, with children, of
// its descendants), read from /proc; 0 when it cannot be read.
func treeRSS(pid int, children bool) int64 {
	var total int64
	seen := map[int]bool{}
	todo := []int{pid}
	for len(todo) > 0 && len(seen) < 1000 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		total += statusKB(p, "VmRSS:") * 1024
		if !children {
			break
		}
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(p) + "/task")
		for _, t := range tasks {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/task/" + t.Name() + "/children")
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					todo = append(todo, c)
				}
			}
		}
	}
	return total
}

// statusKB reads a "Key:   123 kB" line of /proc/<pid>/status.
func statusKB(pid int, key string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return kbLine(b, key)
}

func kbLine(b []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// memInfo is the machine's total and available memory in bytes.
func memInfo() (total, available int64) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	return kbLine(b, "MemTotal:") * 1024, kbLine(b, "MemAvailable:") * 1024
}
