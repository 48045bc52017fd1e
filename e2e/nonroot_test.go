package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"html"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

func init() {
	addCase(batteryCase{Name: "the server as uid 999 with every capability dropped and no-new-privileges (content as the same uid, Landlock alone between them): content tries the database, the configuration, another content's files and processes, a second port, the server's abstract socket, links to the database",
		Issue: "17", Run: testNonRootEscapes})
}

// nonRootUID is the user the server runs as in these tests: the image's
// rstudio-connect, as `docker run --user 999` and Kubernetes'
// runAsNonRoot pods run it.
const nonRootUID = "999"

// unprivilegedServer runs the image as a restricted Kubernetes pod or
// `docker run --user 999 --cap-drop ALL --security-opt no-new-privileges
// -v dais-data:/data dais` does: no root, no capability, a new named
// volume on /data (which takes the image's /data, owned by uid 999). It
// waits for /__ping__, checks that content runs in Landlock sandboxes and
// returns a publisher's key.
// o may add Env and Binds.
func unprivilegedServer(t *testing.T, o Options) (*Container, string) {
	t.Helper()
	volume := uniqueName(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// After the container's removal (registered later by Run, so run earlier).
		if _, err := Docker(t).VolumeRemove(ctx, volume, client.VolumeRemoveOptions{Force: true}); err != nil {
			t.Logf("remove volume %s: %v", volume, err)
		}
	})
	o.User, o.NoSysAdmin, o.CapDrop = nonRootUID, true, []string{"ALL"}
	o.SecurityOpt, o.DataVolume = append(o.SecurityOpt, "no-new-privileges"), volume
	c := Run(t, o)
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	waitLandlock(t, c)
	if r := c.Exec("sh", "-c", "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/1/status"); r.Code != 0 ||
		!strings.HasPrefix(r.Stdout, nonRootUID+"\n") || !strings.Contains(r.Stdout, "CapEff:\t0000000000000000") ||
		!strings.Contains(r.Stdout, "CapBnd:\t0000000000000000") || !strings.Contains(r.Stdout, "NoNewPrivs:\t1") {
		t.Fatalf("the container does not run as uid %s without capabilities: %q %s", nonRootUID, r.Stdout, r.Stderr)
	}
	return c, publisherKey(t, c, "alice", "alice-password-e2e")
}

// waitLandlock waits for the server's line saying content runs in Landlock
// sandboxes (logged once the mode is chosen, which may come after the
// first /__ping__).
func waitLandlock(t *testing.T, c *Container) {
	t.Helper()
	deadline := time.Now().Add(startBound)
	for {
		logs := c.Logs()
		if strings.Contains(logs, "content processes start in landlock sandboxes") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server does not run content in Landlock sandboxes; log:\n%s", tail(logs, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// victimApp is another publisher's app: it keeps a secret in a file of its
// work directory and in its environment, and says where it runs.
const victimApp = `import os
from flask import Flask, jsonify, request

os.environ["VICTIM_SECRET"] = "victim-env-s3cret"
WORK = os.environ["HOME"]  # the work directory (the code directory is read-only)
SECRET = os.path.join(WORK, "victim-secret.txt")
with open(SECRET, "w") as f:
    f.write("victim-file-s3cret")

app = Flask(__name__)


@app.get("/info")
def info():
    return jsonify(pid=os.getpid(), port=int(request.environ.get("SERVER_PORT", "0")),
                   file=SECRET, dir=WORK, uid=os.getuid())
`

// escapeApp tries, from inside its sandbox, everything content must not
// do to the server or to other content running as the same uid, and
// answers each attempt's outcome: "denied: <errno>" or "ALLOWED: ...".
// Signals are SIGCONT and 0, harmless if they got through.
const escapeApp = `import ctypes, errno, os, signal, socket
from flask import Flask, jsonify, request

app = Flask(__name__)
libc = ctypes.CDLL(None, use_errno=True)


def attempt(fn):
    try:
        r = fn()
        return "ALLOWED" + (": " + repr(r)[:80] if r is not None else "")
    except OSError as e:
        return "denied: " + (errno.errorcode.get(e.errno, str(e.errno)) if e.errno else str(e))


def read(p):
    with open(p, "rb") as f:
        return f.read(32)


def ptrace(pid):
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
    return "attached"


def bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return s.getsockname()
    finally:
        s.close()


def connect_tcp(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.close()
    return "connected"


def connect_abstract(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect("\0" + name)
        return "connected"
    finally:
        s.close()


def link_and_read(make, target, name):
    link = os.path.join(os.environ["HOME"], name)
    if os.path.lexists(link):
        os.remove(link)
    make(target, link)
    return read(link)


def server_pid():
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = open("/proc/%s/cmdline" % d, "rb").read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0].endswith(b"dais") and argv[1] == b"serve":
            return int(d)
    return 0


@app.get("/escape")
def escape():
    a = request.args
    victim, srv, db = int(a["pid"]), server_pid(), a["db"]
    status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
    tries = {
        "read the database": lambda: read(db),
        "list the data directory": lambda: os.listdir(a["datadir"]),
        "write into the data directory": lambda: open(os.path.join(a["datadir"], "planted"), "w").close(),
        "read the base configuration": lambda: read("/etc/rstudio-connect/rstudio-connect.gcfg"),
        "read the rendered configuration": lambda: read("/run/dais/rstudio-connect.gcfg"),
        "list /run/dais": lambda: os.listdir("/run/dais"),
        "read another content's file": lambda: read(a["file"]),
        "list another content's work directory": lambda: os.listdir(a["dir"]),
        "signal another content (SIGCONT)": lambda: os.kill(victim, signal.SIGCONT),
        "signal another content (0)": lambda: os.kill(victim, 0),
        "ptrace another content": lambda: ptrace(victim),
        "read another content's environ": lambda: read("/proc/%d/environ" % victim),
        "read another content's memory": lambda: read("/proc/%d/mem" % victim),
        "read another content's fd links": lambda: [os.readlink("/proc/%d/fd/%s" % (victim, n)) for n in os.listdir("/proc/%d/fd" % victim)],
        "signal the server (SIGCONT)": lambda: os.kill(srv, signal.SIGCONT),
        "ptrace the server": lambda: ptrace(srv),
        "read the server's environ": lambda: read("/proc/%d/environ" % srv),
        "read the server's fd links": lambda: [os.readlink("/proc/%d/fd/%s" % (srv, n)) for n in os.listdir("/proc/%d/fd" % srv)],
        "enter the server's root": lambda: os.listdir("/proc/%d/root/data" % srv),
        "signal dais-init (SIGCONT)": lambda: os.kill(1, signal.SIGCONT),
        "bind a second port": lambda: bind(int(a["bindport"])),
        "bind an ephemeral port": lambda: bind(0),
        "connect to another content's port": lambda: connect_tcp(int(a["port"])),
        "connect to the server's abstract socket": lambda: connect_abstract(a["abstract"]),
        "symlink to the database": lambda: link_and_read(os.symlink, db, "db-symlink"),
        "hard link to the database": lambda: link_and_read(os.link, db, "db-hardlink"),
    }
    out = {k: attempt(f) for k, f in tries.items()}
    return jsonify(results=out, uid=os.getuid(), server=srv,
                   cap_eff=status.get("CapEff"), no_new_privs=status.get("NoNewPrivs"))
`

// abstractName is the abstract Unix socket a process of the server's
// uid, outside every sandbox, listens on in testNonRootEscapes.
const abstractName = "dais-e2e-server-socket"

// testNonRootEscapes runs the server as uid 999 with no capability: content
// runs as the same uid, so file permissions, signal and ptrace checks by
// uid all let it through, and Landlock alone must stop it. Each attempt is
// first made from outside the sandboxes as the same uid (docker exec),
// where it must succeed: what the content is denied, the sandbox denies.
func testNonRootEscapes(t *testing.T, r *row) {
	c, alice := unprivilegedServer(t, Options{})
	bob := publisherKey(t, c, "bob", "bob-password-e2e")
	victimGUID, tk, out := deployV1(t, c, bob, "victim", bundle(t, flaskDir(t, victimApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy of bob's app failed: %s\n%s", tk.Error, out)
	}
	var victim struct {
		PID  int    `json:"pid"`
		Port int    `json:"port"`
		File string `json:"file"`
		Dir  string `json:"dir"`
		UID  int    `json:"uid"`
	}
	apiJSON(t, c, "GET", "/content/"+victimGUID+"/info", bob, nil, &victim)
	escapeGUID, tk, out := deployV1(t, c, alice, "escape", bundle(t, flaskDir(t, escapeApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy of alice's app failed: %s\n%s", tk.Error, out)
	}
	const db = "/data/db/dais.db"
	bindPort := 18777

	// The same uid outside the sandboxes: the server's abstract socket (a
	// stand-in listening as the server does), and every attempt that
	// content must fail, succeeding here.
	if r := c.Exec("sh", "-c", `nohup python3 -c 'import socket, time
s = socket.socket(socket.AF_UNIX); s.bind("\0`+abstractName+`"); s.listen(16)
while True: s.accept()[0].close()' >/dev/null 2>&1 & sleep 1; grep -c "@`+abstractName+`" /proc/net/unix`); r.Code != 0 {
		t.Fatalf("start the abstract socket: %s %s", r.Stdout, r.Stderr)
	}
	control := c.Exec("sh", "-c", strings.Join([]string{
		"set -e",
		"id -u",
		"head -c 15 " + db, "echo",
		"head -c 18 " + victim.File, "echo",
		"kill -0 " + strconv.Itoa(victim.PID),
		"head -c 1 /proc/" + strconv.Itoa(victim.PID) + "/environ >/dev/null",
		"ls /run/dais",
		`python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect("\0` + abstractName + `"); print("abstract ok")'`,
		`python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", ` + strconv.Itoa(bindPort) + `)); print("bind ok")'`,
		`python3 -c 'import socket; socket.create_connection(("127.0.0.1", ` + strconv.Itoa(victim.Port) + `), 3); print("connect ok")'`,
	}, "\n"))
	for _, want := range []string{nonRootUID + "\n", "SQLite format 3", "victim-file-s3cret", "rstudio-connect.gcfg", "abstract ok", "bind ok", "connect ok"} {
		if control.Code != 0 || !strings.Contains(control.Stdout, want) {
			t.Fatalf("control outside the sandbox (uid %s) lacks %q: exit %d\n%s%s", nonRootUID, want, control.Code, control.Stdout, control.Stderr)
		}
	}
	if victim.UID != 999 {
		t.Errorf("bob's app runs as uid %d, want the server's %s", victim.UID, nonRootUID)
	}

	var probe struct {
		Results    map[string]string `json:"results"`
		UID        int               `json:"uid"`
		Server     int               `json:"server"`
		CapEff     string            `json:"cap_eff"`
		NoNewPrivs string            `json:"no_new_privs"`
	}
	q := "/content/" + escapeGUID + "/escape?pid=" + strconv.Itoa(victim.PID) + "&port=" + strconv.Itoa(victim.Port) +
		"&file=" + victim.File + "&dir=" + victim.Dir + "&db=" + db + "&datadir=/data&bindport=" + strconv.Itoa(bindPort) +
		"&abstract=" + abstractName
	apiJSON(t, c, "GET", q, alice, nil, &probe)
	if probe.UID != 999 || probe.Server == 0 || probe.CapEff != "0000000000000000" || probe.NoNewPrivs != "1" {
		t.Errorf("alice's app: uid %d, server pid %d, CapEff %s, NoNewPrivs %s; want uid %s, the server found, no capability, no_new_privs",
			probe.UID, probe.Server, probe.CapEff, probe.NoNewPrivs, nonRootUID)
	}
	want := []string{"read the database", "list the data directory", "write into the data directory", "read the base configuration",
		"read the rendered configuration", "list /run/dais", "read another content's file", "list another content's work directory",
		"signal another content (SIGCONT)", "signal another content (0)", "ptrace another content", "read another content's environ",
		"read another content's memory", "read another content's fd links", "signal the server (SIGCONT)", "ptrace the server",
		"read the server's environ", "read the server's fd links", "enter the server's root", "signal dais-init (SIGCONT)",
		"bind a second port", "bind an ephemeral port", "connect to another content's port", "connect to the server's abstract socket",
		"symlink to the database", "hard link to the database"}
	var lines []string
	for _, k := range want {
		v, ok := probe.Results[k]
		if !ok {
			t.Errorf("%s: not tried", k)
			continue
		}
		if !strings.HasPrefix(v, "denied: ") {
			t.Errorf("%s: %s", k, v)
		}
		lines = append(lines, k+": "+strings.TrimPrefix(v, "denied: "))
	}
	sort.Strings(lines)
	// Both apps still serve.
	apiJSON(t, c, "GET", "/content/"+victimGUID+"/info", bob, nil, nil)
	r.Figure(t, "server and content uid %d, CapEff %s, NoNewPrivs %s; the same attempts succeed outside the sandbox as uid %s; %d of %d denied inside: %s",
		probe.UID, probe.CapEff, probe.NoNewPrivs, nonRootUID, countDenied(probe.Results), len(want), strings.Join(lines, "; "))
}

func countDenied(m map[string]string) int {
	n := 0
	for _, v := range m {
		if strings.HasPrefix(v, "denied: ") {
			n++
		}
	}
	return n
}

func init() {
	addCase(batteryCase{Name: "the server as uid 999, no capability: the package restore and the render of a notebook (nbconvert and its kernel) run in Landlock sandboxes too",
		Issue: "17", Run: testNonRootRestoreAndRender})
}

// probeSiteCustomize is imported by every Python process that has the
// bundle's code directory on PYTHONPATH (a content environment variable):
// the restore's (venv, the requirements check, pip), the render's
// (nbconvert) and the kernel's. Each appends to $HOME/probes.txt one line
// of what it could do to the server.
const probeSiteCustomize = `import os, socket


def _try(fn):
    try:
        fn()
        return "ALLOWED"
    except OSError as e:
        return "EPERM" if e.errno == 1 else "EACCES" if e.errno == 13 else "errno%d" % e.errno


def _server():
    for d in os.listdir("/proc"):
        try:
            argv = open("/proc/%s/cmdline" % d, "rb").read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0].endswith(b"dais") and argv[1] == b"serve":
            return int(d)
    return 0


def _bind():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 18778))
    finally:
        s.close()


try:
    _srv = _server()
    _line = "PROBE %s uid=%d db=%s datadir=%s config=%s signal=%s environ=%s bind=%s" % (
        "_".join(os.path.basename(a.decode()) for a in open("/proc/self/cmdline", "rb").read().split(b"\0")[1:4]).replace(" ", "_")[:60],
        os.getuid(),
        _try(lambda: open("/data/db/dais.db", "rb").read(1)),
        _try(lambda: os.listdir("/data")),
        _try(lambda: open("/run/dais/rstudio-connect.gcfg").read(1)),
        _try(lambda: os.kill(_srv, 0)),
        _try(lambda: open("/proc/%d/environ" % _srv, "rb").read(1)),
        _try(_bind),
    )
    with open(os.path.join(os.environ["HOME"], "probes.txt"), "a") as _f:
        _f.write(_line + "\n")
except Exception as _e:
    pass
`

// probeNotebook prints the probes' lines (the kernel's own included).
const probeNotebook = `{"cells": [{"cell_type": "code", "execution_count": null, "id": "probes", "metadata": {}, "outputs": [],
 "source": ["import os\n", "print(open(os.path.join(os.environ['HOME'], 'probes.txt')).read())"]}],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4, "nbformat_minor": 5}
`

func testNonRootRestoreAndRender(t *testing.T, r *row) {
	c, key := unprivilegedServer(t, Options{})
	dir := t.TempDir()
	files := map[string]string{"notebook.ipynb": probeNotebook, "sitecustomize.py": probeSiteCustomize, "requirements.txt": "flask\n"}
	sums := []string{}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, fmt.Sprintf("%q: {\"checksum\": \"%x\"}", name, md5.Sum([]byte(body))))
	}
	sort.Strings(sums)
	manifest := `{"version": 1, "metadata": {"appmode": "jupyter-static", "entrypoint": "notebook.ipynb"},
 "python": {"version": "3.11.2", "package_manager": {"name": "pip", "package_file": "requirements.txt"}},
 "files": {` + strings.Join(sums, ", ") + `}}`
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	// The v1 API step by step: the code directory's path is known once the
	// bundle is, and PYTHONPATH must be set before the deploy.
	var content struct {
		GUID string `json:"guid"`
		ID   string `json:"id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content", key, strings.NewReader(`{"name":"probes","access_type":"acl"}`), &content)
	var b struct {
		ID string `json:"id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+content.GUID+"/bundles", key, bytes.NewReader(bundle(t, dir)), &b)
	code := "/data/apps/" + content.ID + "/" + b.ID + "/code"
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+content.GUID+"/environment", key,
		strings.NewReader(`[{"name":"PYTHONPATH","value":"`+code+`"}]`), nil)
	var d struct {
		TaskID string `json:"task_id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+content.GUID+"/deploy", key, strings.NewReader(`{"bundle_id":"`+b.ID+`"}`), &d)
	tk := waitTask(t, c, key, d.TaskID)
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, strings.Join(tk.Output, "\n"))
	}
	_, page := getWithKey(t, c, "/content/"+content.GUID+"/", key)
	lines := regexp.MustCompile(`PROBE [^\n<]*`).FindAllString(html.UnescapeString(page), -1)
	var restore, render, kernel bool
	for _, l := range lines {
		f := strings.Fields(l)
		restore = restore || strings.Contains(f[1], "venv") || strings.Contains(f[1], "pip") || strings.HasSuffix(f[1], "-c")
		render = render || strings.Contains(f[1], "nbconvert")
		kernel = kernel || strings.Contains(f[1], "ipykernel")
		for _, kv := range f[2:] {
			k, v, _ := strings.Cut(kv, "=")
			if k == "uid" {
				if v != nonRootUID {
					t.Errorf("%s: runs as uid %s, want %s", f[1], v, nonRootUID)
				}
				continue
			}
			if v != "EACCES" && v != "EPERM" {
				t.Errorf("%s: %s: %s", f[1], k, v)
			}
		}
	}
	if !restore || !render || !kernel {
		t.Fatalf("probes from the restore %v, the render (nbconvert) %v, the kernel %v; want all; lines:\n%s", restore, render, kernel, strings.Join(lines, "\n"))
	}
	r.Figure(t, "%d Python processes of the restore, the render and the kernel probed, each denied the database, DataDir, the rendered configuration, signal 0 and environ of the server, a bind: %s",
		len(lines), strings.Join(lines, "; "))
}

// TestLandlockDataOutOfReach: `docker run` with no privilege (Landlock
// mode, content as uid 999) on a host directory of root's with mode 0700 as
// /data. Content cannot run there: it needs search permission on every
// directory above its own. The server says so when it starts, and the
// self-test names the directory, its mode and the fix, instead of "exec
// /bin/true: permission denied" and a hint about CAP_SYS_ADMIN.
func TestLandlockDataOutOfReach(t *testing.T) {
	data := tempDir(t)
	if err := os.Chmod(data, 0o700); err != nil {
		t.Fatal(err)
	}
	c := Run(t, Options{NoSysAdmin: true, DataDir: data})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	waitLandlock(t, c)
	want := "content cannot start: the content's user (uid 999, gid 999) may not search /data (mode 0700, owner uid 0, group gid 0)"
	if logs := c.Logs(); !strings.Contains(logs, want) || !strings.Contains(logs, "chmod o+x /data") {
		t.Errorf("the server's log does not say why content cannot start (want %q and the fix); log:\n%s", want, tail(logs, 30))
	}
	r := c.Exec("dais", "sandbox", "selftest")
	t.Logf("dais sandbox selftest (exit %d):\n%s%s", r.Code, r.Stdout, r.Stderr)
	out := r.Stdout + r.Stderr
	if r.Code == 0 || !strings.Contains(out, "enter the work directory") || !strings.Contains(out, "may not search /data (mode 0700") ||
		strings.Contains(out, "CAP_SYS_ADMIN") {
		t.Errorf("selftest exit %d does not name /data, its mode and the fix (or still blames CAP_SYS_ADMIN):\n%s", r.Code, out)
	}
}
