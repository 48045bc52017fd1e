package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// quartoStandInNote is logged by the Quarto tests, as their doc comments say.
const quartoStandInNote = "Quarto here is a STAND-IN, not Quarto: e2e/testdata/quarto-standin/bin/quarto, " +
	"a shell script that answers --version and renders a .qmd's markdown body with pandoc. " +
	"This proves dais's side (discovery, version matching, the sandboxed render, serving the output), not Quarto itself."

// quartoStandInLog is where the stand-in appends its calls made with the
// server's environment (QUARTO_STANDIN_LOG): the version queries of
// dais-init and of the server. Content in a sandbox gets neither the
// variable nor the server's /tmp.
const quartoStandInLog = "/tmp/quarto-standin.log"

// quartoServer starts dais with the Quarto stand-in mounted read-only as
// two installations, /opt/quarto/1.4.550 and /opt/quarto/1.3.450 (the
// stand-in reports the version its directory is named after), and returns
// it with the API key of a publisher.
func quartoServer(t *testing.T) (*Container, string) {
	t.Helper()
	standin, err := filepath.Abs(filepath.Join("testdata", "quarto-standin"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(standin, "bin", "quarto")); err != nil || fi.Mode()&0o005 != 0o005 {
		t.Fatalf("the stand-in must be readable and executable by all (content runs as uid 999): %v %v", fi.Mode(), err)
	}
	c := Run(t, Options{
		Env: []string{"QUARTO_STANDIN_LOG=" + quartoStandInLog},
		Binds: []string{
			standin + ":/opt/quarto/1.4.550:ro",
			standin + ":/opt/quarto/1.3.450:ro",
		},
	})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	key := publisherKey(t, c, "quarto", "quarto-password-e2e")
	return c, key
}

// quartoExample is examples/quarto with its manifest asking for another
// Quarto version, in a temporary directory.
func quartoExample(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	doc, err := os.ReadFile(filepath.Join(exampleDir("quarto"), "document.qmd"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile(filepath.Join(exampleDir("quarto"), "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(man, &m); err != nil {
		t.Fatal(err)
	}
	m["quarto"].(map[string]any)["version"] = version
	man, _ = json.MarshalIndent(m, "", "  ")
	for name, b := range map[string][]byte{"document.qmd": doc, "manifest.json": man} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// quartoVersion is the content's quarto_version as the v1 API shows it.
func quartoVersion(t *testing.T, c *Container, key, guid string) string {
	t.Helper()
	var v struct {
		QuartoVersion *string `json:"quarto_version"`
	}
	apiJSON(t, c, "GET", "/__api__/v1/content/"+guid, key, nil, &v)
	if v.QuartoVersion == nil {
		return ""
	}
	return *v.QuartoVersion
}

// renderCall matches the stand-in's line for a render: the installation
// dais picked, the writable copy of the bundle and the output directory.
var renderCall = regexp.MustCompile(`quarto-standin: argv: /opt/quarto/([0-9.]+)/bin/quarto 'render' '(/data/apps/[^']+/work/quarto-src/document\.qmd)' '--output-dir' '(/data/apps/[^']+/output-[0-9]+)'`)

// TestQuartoStaticWithStandIn deploys examples/quarto (quarto-static)
// through the v1 API into the container, with a STAND-IN for Quarto
// mounted as two installations (see quartoStandInNote: this proves dais's
// side, not Quarto). It checks that dais discovers the installations by
// running `quarto --version` on the server side, picks the requested
// version, renders `quarto render <copy>/document.qmd --output-dir <out>`
// in the sandbox as rstudio-connect (uid 999), serves the HTML at
// /content/<guid>/, records quarto_version, renders again on request,
// applies the matching rule (exact, else same major.minor, else the nearest
// newer of the same major) and fails a request nothing matches with an
// error naming the installed versions.
func TestQuartoStaticWithStandIn(t *testing.T) {
	t.Log(quartoStandInNote)
	c, key := quartoServer(t)

	guid, tk, out := deployV1(t, c, key, "quarto", bundle(t, exampleDir("quarto")))
	t.Logf("task output:\n%s", out)
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s", tk.Error)
	}
	if !strings.Contains(out, `Using Quarto 1.4.550 (/opt/quarto/1.4.550/bin/quarto) for the requested "1.4.550"`) {
		t.Errorf("the task does not say it picked /opt/quarto/1.4.550 for 1.4.550")
	}
	calls := renderCall.FindAllStringSubmatch(out, -1)
	if len(calls) != 1 || calls[0][1] != "1.4.550" {
		t.Fatalf("want one render by /opt/quarto/1.4.550/bin/quarto of the bundle's writable copy into an output directory, got %q", calls)
	}
	// The render ran in the sandbox, as rstudio-connect, not as root.
	if !strings.Contains(out, "quarto-standin: uid: 999") || strings.Contains(out, "quarto-standin: uid: 0") {
		t.Errorf("the render did not run as uid 999 (rstudio-connect)")
	}
	// The output directory was written by the render (uid 999) and is
	// what dais serves.
	if r := c.Exec("stat", "-c", "%u", calls[0][3]+"/document.html"); strings.TrimSpace(r.Stdout) != "999" {
		t.Errorf("%s/document.html: owner %q %s, want 999", calls[0][3], r.Stdout, r.Stderr)
	}
	const phrase = "rendered by dais when it is deployed"
	for _, p := range []string{"", "document.html"} {
		status, body := c.Get("/content/" + guid + "/" + p)
		if status != http.StatusOK || !strings.Contains(body, phrase) || !strings.Contains(body, "<title>dais Quarto example</title>") {
			t.Errorf("GET /content/%s/%s = %d %.400s, want the rendered document", guid, p, status, body)
		}
	}
	if v := quartoVersion(t, c, key, guid); v != "1.4.550" {
		t.Errorf("quarto_version = %q, want 1.4.550", v)
	}
	// Each installation's --version ran on the server side, as root
	// (dais-init's start-up check, then the server's discovery, cached);
	// the sandboxed render did not see the server's environment.
	for _, v := range []string{"1.3.450", "1.4.550"} {
		if !strings.Contains(c.Logs(), "found Quarto "+v) {
			t.Errorf("dais-init did not log \"found Quarto %s\"", v)
		}
	}
	r := c.Exec("cat", quartoStandInLog)
	t.Logf("%s:\n%s", quartoStandInLog, r.Stdout)
	for _, want := range []string{
		"quarto-standin: argv: /opt/quarto/1.4.550/bin/quarto '--version'",
		"quarto-standin: argv: /opt/quarto/1.3.450/bin/quarto '--version'",
		"quarto-standin: uid: 0",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("%s lacks %q:\n%s%s", quartoStandInLog, want, r.Stdout, r.Stderr)
		}
	}
	if strings.Contains(r.Stdout, "'render'") {
		t.Errorf("the render wrote to the server's %s: the sandbox leaked the server's environment or /tmp:\n%s", quartoStandInLog, r.Stdout)
	}

	// A render on request: a new output directory, served.
	var rr struct {
		TaskID string `json:"task_id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/render", key, strings.NewReader(""), &rr)
	rtk := waitTask(t, c, key, rr.TaskID)
	again := renderCall.FindAllStringSubmatch(strings.Join(rtk.Output, "\n"), -1)
	if rtk.Code != 0 || len(again) != 1 || again[0][3] == calls[0][3] {
		t.Errorf("render on request: code %d %s, renders %q (want one, into a new directory)\n%s", rtk.Code, rtk.Error, again, strings.Join(rtk.Output, "\n"))
	}
	if status, body := c.Get("/content/" + guid + "/"); status != http.StatusOK || !strings.Contains(body, phrase) {
		t.Errorf("after the render on request GET /content/%s/ = %d %.300s", guid, status, body)
	}

	// The matching rule, each on new content (redeploys with new versions
	// are covered by server/deploy's TestRedeployUsesTheManifestsNewVersion).
	for i, tt := range []struct {
		want, picked string
	}{
		{"1.3", "1.3.450"},   // same major.minor
		{"1.2.0", "1.3.450"}, // nearest newer, not the newest
		{"1.4.2", "1.4.550"}, // same major.minor, another patch
	} {
		t.Run("asks "+tt.want, func(t *testing.T) {
			guid, tk, out := deployV1(t, c, key, "quarto-"+strconv.Itoa(i), bundle(t, quartoExample(t, tt.want)))
			if tk.Code != 0 {
				t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
			}
			calls := renderCall.FindAllStringSubmatch(out, -1)
			if len(calls) != 1 || calls[0][1] != tt.picked {
				t.Errorf("asked for %s: rendered by %q, want /opt/quarto/%s/bin/quarto\n%s", tt.want, calls, tt.picked, out)
			}
			if v := quartoVersion(t, c, key, guid); v != tt.picked {
				t.Errorf("quarto_version = %q, want %s", v, tt.picked)
			}
		})
	}
	t.Run("asks 9.9", func(t *testing.T) {
		_, tk, out := deployV1(t, c, key, "quarto-nine", bundle(t, quartoExample(t, "9.9")))
		if tk.Code == 0 {
			t.Fatalf("a bundle asking for Quarto 9.9 deployed:\n%s", out)
		}
		t.Logf("task error: %s", tk.Error)
		for _, want := range []string{"9.9", "1.3.450 (/opt/quarto/1.3.450/bin/quarto)", "1.4.550 (/opt/quarto/1.4.550/bin/quarto)", "/opt/quarto/<version>", "[Quarto] Executable"} {
			if !strings.Contains(tk.Error, want) {
				t.Errorf("task error %q does not name %q", tk.Error, want)
			}
		}
		if strings.Contains(out, "'render'") {
			t.Errorf("a render ran:\n%s", out)
		}
	})
}

// waitTask long-polls a task until it finishes and returns it with all
// its output.
func waitTask(t *testing.T, c *Container, key, id string) v1Task {
	t.Helper()
	var all []string
	first := 0
	for range 30 {
		var tk v1Task
		apiJSON(t, c, "GET", "/__api__/v1/tasks/"+id+"?wait=10&first="+strconv.Itoa(first), key, nil, &tk)
		all = append(all, tk.Output...)
		first = tk.Last
		if tk.Finished {
			tk.Output = all
			return tk
		}
	}
	t.Fatalf("task %s not finished in 5 minutes:\n%s", id, strings.Join(all, "\n"))
	return v1Task{}
}
