package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func init() {
	addCase(batteryCase{Name: "a publisher's app reads /proc/net/tcp and connects to every listener it finds (another owner's app, the container's loopback, dais's sockets)",
		Issue: "23.1", Run: func(t *testing.T, r *row) { testContentCannotReachContent(t, r, sandboxMode("namespaces")) }})
	addCase(batteryCase{Name: "the same, the apps in Landlock sandboxes", Issue: "23.1",
		Run: func(t *testing.T, r *row) { testContentCannotReachContent(t, r, sandboxMode("landlock")) }})
	addCase(batteryCase{Name: "outbound network: on reaches a server on the Docker network by name, off (outbound_network set by an administrator) does not",
		Issue: "23.1", Run: testOutboundSwitch})
}

// secretApp serves a secret to its owner (access acl): what the prober
// must not get by going around dais.
const secretApp = `from flask import Flask

app = Flask(__name__)


@app.get("/secret")
def secret():
    return "bob-s3cret-payload"
`

// proberApp, at /probe, reads every /proc/*/net/tcp{,6} it can (its own
// namespace's and, where /proc shows them, other processes': another
// content's and the server's), adds the ports given in ?extra=, and
// connects to each on 127.0.0.1, ::1 and the container's own address,
// asking for /secret; then it connects to every abstract Unix socket
// /proc/net/unix lists. It answers what it saw and reached.
const proberApp = `import glob, os, socket
from flask import Flask, jsonify, request

app = Flask(__name__)


def listeners():
    ports = set()
    for f in glob.glob("/proc/net/tcp*") + glob.glob("/proc/[0-9]*/net/tcp*"):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            p = line.split()
            if len(p) > 3 and p[3] == "0A":
                ports.add(int(p[1].split(":")[1], 16))
    return ports


def fetch(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
    except OSError:
        s.close()
        return None
    data = b""
    try:
        s.sendall(b"GET /secret HTTP/1.0\r\nHost: localhost\r\n\r\n")
        while len(data) < 65536:
            b = s.recv(4096)
            if not b:
                break
            data += b
    except OSError:
        pass
    s.close()
    return data.decode("latin-1")


@app.get("/probe")
def probe():
    own = int(request.environ.get("SERVER_PORT", "0"))
    ports = listeners()
    seen = sorted(ports)
    for p in request.args.get("extra", "").split(","):
        if p:
            ports.add(int(p))
    hosts = ["127.0.0.1", "::1"]
    try:
        hosts.append(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    connected, leaked, tried = [], False, 0
    for port in sorted(ports):
        if port == own:
            continue
        for h in hosts:
            tried += 1
            got = fetch(h, port)
            if got is not None:
                connected.append("%s:%d" % (h, port))
                leaked = leaked or "bob-s3cret-payload" in got
    abstract = []
    try:
        for line in open("/proc/net/unix").read().splitlines()[1:]:
            p = line.split()
            if len(p) >= 8 and p[7].startswith("@"):
                abstract.append(p[7])
    except OSError:
        pass
    abstract_connected = []
    for name in abstract:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect("\0" + name[1:])
            abstract_connected.append(name)
        except OSError:
            pass
        s.close()
    return jsonify(seen=seen, tried=tried, connected=connected, leaked=leaked, hosts=hosts,
                   own=own, abstract=abstract, abstract_connected=abstract_connected)
`

// listeningPorts are the TCP ports that listen anywhere in c: every
// process's /proc/PID/net/tcp{,6}, in whatever network namespace.
func listeningPorts(t *testing.T, c *Container) []int {
	t.Helper()
	r := c.Exec("sh", "-c", "cat /proc/[0-9]*/net/tcp /proc/[0-9]*/net/tcp6 2>/dev/null")
	set := map[int]bool{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		if _, hexPort, ok := strings.Cut(f[1], ":"); ok {
			if n, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
				set[int(n)] = true
			}
		}
	}
	var out []int
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func testContentCannotReachContent(t *testing.T, r *row, env []string) {
	c, alice := deployServer(t, env...)
	mustMode(t, c, env)
	landlock := slices.Contains(env, "CONNECT_SANDBOX_MODE=landlock")
	bob := publisherKey(t, c, "bob", "bob-password-e2e")
	secretGUID, tk, out := deployV1(t, c, bob, "secret", bundle(t, flaskDir(t, secretApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy of bob's app failed: %s\n%s", tk.Error, out)
	}
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+secretGUID, bob, strings.NewReader(`{"access_type":"acl"}`), nil)
	proberGUID, tk, out := deployV1(t, c, alice, "prober", bundle(t, flaskDir(t, proberApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy of alice's prober failed: %s\n%s", tk.Error, out)
	}
	// dais serves bob's app to bob, and refuses it to alice.
	if code, body := getWithKey(t, c, "/content/"+secretGUID+"/secret", bob); code != 200 || body != "bob-s3cret-payload" {
		t.Fatalf("bob's app to bob: %d %q", code, body)
	}
	if code, body := getWithKey(t, c, "/content/"+secretGUID+"/secret", alice); code == 200 {
		t.Fatalf("dais served bob's acl app to alice: %q", body)
	}
	// An internal listener on the container's loopback (a sidecar, a
	// database on 127.0.0.1, a listener of dais's own): not for content.
	internal := c.Exec("sh", "-c", "nohup python3 -m http.server 18555 --bind 127.0.0.1 >/dev/null 2>&1 & sleep 1; echo started")
	if internal.Code != 0 {
		t.Fatalf("start the internal listener: %s", internal.Stderr)
	}
	ports := listeningPorts(t, c)
	if !slices.Contains(ports, 18555) || !slices.Contains(ports, 3939) || len(ports) < 4 {
		t.Fatalf("listeners in the container %v: want 3939, 18555 and the two apps' ports", ports)
	}
	var extra []string
	for _, p := range ports {
		extra = append(extra, strconv.Itoa(p))
	}
	var probe struct {
		Seen              []int    `json:"seen"`
		Tried             int      `json:"tried"`
		Connected         []string `json:"connected"`
		Leaked            bool     `json:"leaked"`
		Hosts             []string `json:"hosts"`
		Own               int      `json:"own"`
		Abstract          []string `json:"abstract"`
		AbstractConnected []string `json:"abstract_connected"`
	}
	apiJSON(t, c, "GET", "/content/"+proberGUID+"/probe?extra="+strings.Join(extra, ","), alice, nil, &probe)
	if probe.Leaked {
		t.Errorf("alice's app got bob's secret around dais: connected to %v", probe.Connected)
	}
	// Only the public port may answer: on the container's own address (as
	// any host of the network reaches it); in Landlock mode, which shares
	// the server's network, on its loopback too (3939 is in the connect list).
	for _, a := range probe.Connected {
		loop := strings.HasPrefix(a, "127.") || strings.HasPrefix(a, "::1")
		if !strings.HasSuffix(a, ":3939") || (loop && !landlock) {
			t.Errorf("alice's app connected to %s", a)
		}
	}
	if len(probe.AbstractConnected) > 0 {
		t.Errorf("alice's app connected to abstract sockets %v", probe.AbstractConnected)
	}
	if probe.Tried < 2*(len(ports)-1) {
		t.Errorf("the prober tried %d connections for ports %v: the probe did not run", probe.Tried, ports)
	}
	// Both apps still served, each through its own namespace.
	if code, body := getWithKey(t, c, "/content/"+secretGUID+"/secret", bob); code != 200 || body != "bob-s3cret-payload" {
		t.Fatalf("bob's app after the probe: %d %q", code, body)
	}
	r.Figure(t, "%d listeners in the container (%v), %d connections tried from alice's app on %v: reached %v, bob's secret leaked: %v",
		len(ports), ports, probe.Tried, probe.Hosts, orNone(probe.Connected), probe.Leaked)
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// peerApp, at /peer?host=H&port=P, resolves H and connects to it, and
// answers what it read.
const peerApp = `import socket
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/peer")
def peer():
    host, port = request.args["host"], int(request.args["port"])
    out = {"host": host}
    try:
        out["address"] = socket.gethostbyname(host)
    except OSError as e:
        out["resolve_error"] = str(e)
        return jsonify(out)
    try:
        s = socket.create_connection((out["address"], port), timeout=5)
        out["read"] = s.recv(100).decode()
        s.close()
    except OSError as e:
        out["connect_error"] = str(e)
    return jsonify(out)
`

func testOutboundSwitch(t *testing.T, r *row) {
	net := NewNetwork(t)
	// A server on the Docker network (a database, say), known by its name.
	peer := Run(t, Options{Network: net, Aliases: []string{"peerdb"}, NoSysAdmin: true, NoData: true, Ports: []string{},
		Entrypoint: []string{"python3", "-c", `import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777)); s.listen()
while True:
    c, _ = s.accept(); c.sendall(b"hello from peerdb"); c.close()`}})
	_ = peer
	c := Run(t, Options{Network: net})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	alice := publisherKey(t, c, "alice", "alice-password-e2e")
	admin := adminKey(t, c)
	guid, tk, out := deployV1(t, c, alice, "peer", bundle(t, flaskDir(t, peerApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	type answer struct {
		Address      string `json:"address"`
		Read         string `json:"read"`
		ResolveError string `json:"resolve_error"`
		ConnectError string `json:"connect_error"`
	}
	ask := func() answer {
		var a answer
		apiJSON(t, c, "GET", "/content/"+guid+"/peer?host=peerdb&port=7777", alice, nil, &a)
		return a
	}
	on := ask()
	if on.Read != "hello from peerdb" {
		t.Fatalf("outbound on (the default): the app did not reach peerdb:7777: %+v", on)
	}
	// A publisher may not turn it off; an administrator may.
	if code, body := api(t, c, "PATCH", "/__api__/v1/content/"+guid, alice, strings.NewReader(`{"outbound_network":false}`)); code != http.StatusForbidden {
		t.Fatalf("PATCH outbound_network by the publisher = %d %s, want 403", code, body)
	}
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+guid, admin, strings.NewReader(`{"outbound_network":false}`), nil)
	// The processes are replaced by ones without outbound network.
	var off answer
	deadline := time.Now().Add(2 * time.Minute)
	for {
		off = ask()
		if off.Read == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbound off: the app still reaches peerdb 2 minutes after the PATCH: %+v", off)
		}
		time.Sleep(time.Second)
	}
	var shown map[string]any
	apiJSON(t, c, "GET", "/__api__/v1/content/"+guid, alice, nil, &shown)
	if shown["outbound_network"] != false {
		t.Errorf("GET shows outbound_network %v, want false", shown["outbound_network"])
	}
	r.Figure(t, "on: resolved peerdb to %s and read %q; off: %s", on.Address, on.Read,
		strings.TrimSpace(fmt.Sprint(off.ResolveError, " ", off.ConnectError)))
}
