package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/deploy"
)

// Issue 7: the runtime version a deploy used must not become the request
// of the next deploys. These tests deploy examples/quarto with two Quarto
// installations, copies of the e2e Quarto stand-in (a shell script over
// pandoc, NOT Quarto) in <root>/1.3.450/bin and <root>/1.4.550/bin, which
// answer --version with the name of their directory; the task log shows
// which copy rendered, by its path.

// quartoFixture is a fixture whose only Quarto installations are copies
// of the stand-in as each of versions, <root>/<version>/bin/quarto (found
// as /opt/quarto/* would be); it returns root. Without pandoc the test is
// skipped, or fails when CI=true.
func quartoFixture(t *testing.T, versions ...string) (*fixture, string) {
	t.Helper()
	needCommand(t, "pandoc (for the Quarto stand-in)", "pandoc", "pandoc", "--version")
	script, err := os.ReadFile(filepath.Join("..", "..", "e2e", "testdata", "quarto-standin", "bin", "quarto"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, v := range versions {
		bin := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, "quarto"), script, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, deploy.Options{})
	f.svc.Finder().Executables[manifest.LangQuarto] = nil
	f.svc.Finder().Roots[manifest.LangQuarto] = []string{filepath.Join(root, "*", "bin", "quarto")}
	return f, root
}

// quartoBundle is examples/quarto with its manifest asking for Quarto version.
func quartoBundle(t *testing.T, version string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(example("quarto"), manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["quarto"].(map[string]any)["version"] = version
	raw, _ = json.Marshal(m)
	doc, err := os.ReadFile(filepath.Join(example("quarto"), "document.qmd"))
	if err != nil {
		t.Fatal(err)
	}
	return tarGz(t, "", entry{name: "./" + manifest.FileName, body: string(raw)}, entry{name: "./document.qmd", body: string(doc)})
}

// renderedWith fails unless the task output shows the render run by the
// stand-in of version, and only by it.
func renderedWith(t *testing.T, what, root, version string, lines []string) {
	t.Helper()
	out := strings.Join(lines, "\n")
	for _, v := range []string{"1.3.450", "1.4.550"} {
		ran := strings.Contains(out, filepath.Join(root, v, "bin", "quarto")+" 'render' ")
		if ran != (v == version) {
			t.Fatalf("%s: want the render by Quarto %s only; the %s stand-in rendered: %v. Task output:\n%s", what, version, v, ran, out)
		}
	}
}

// contentVersions reads the content's quarto_version and
// quarto_version_requested from the v1 API ("" when absent or null).
func (f *fixture) contentVersions(t *testing.T, guid string) (used, requested string) {
	t.Helper()
	var c map[string]any
	f.must(t, "GET", "/__api__/v1/content/"+guid, "pub1", nil, &c)
	s := func(k string) string { v, _ := c[k].(string); return v }
	return s("quarto_version"), s("quarto_version_requested")
}

// renderV1 asks for a render of the content through the v1 API and waits
// for its task.
func (f *fixture) renderV1(t *testing.T, user, guid string) (taskJSON, []string) {
	t.Helper()
	var r struct {
		TaskID string `json:"task_id"`
	}
	f.must(t, "POST", "/__api__/v1/content/"+guid+"/render", user, "", &r)
	return f.waitV1(t, user, r.TaskID)
}

// A redeploy whose manifest asks for another version gets that version,
// not the one the previous deploy used.
func TestRedeployUsesTheManifestsNewVersion(t *testing.T) {
	f, root := quartoFixture(t, "1.3.450", "1.4.550")
	for _, version := range []string{"1.3.450", "1.4.550", "1.3.450"} {
		guid, tj, lines := f.deployV1(t, "pub1", "doc", quartoBundle(t, version))
		if tj.Code != 0 {
			t.Fatalf("deploy asking for %s: %s\n%s", version, tj.Error, strings.Join(lines, "\n"))
		}
		renderedWith(t, "deploy of a manifest asking for "+version, root, version, lines)
		if used, requested := f.contentVersions(t, guid); used != version || requested != "" {
			t.Fatalf("after the deploy asking for %s: quarto_version %q, quarto_version_requested %q; want %s and none",
				version, used, requested, version)
		}
	}
}

// A version set through the API wins over the manifest's from the next
// deploy on (not for the active bundle); cleared, the manifest's applies
// again. Setting it never changes quarto_version, the version used.
func TestRequestedVersionWinsUntilCleared(t *testing.T) {
	f, root := quartoFixture(t, "1.3.450", "1.4.550")
	bundle := quartoBundle(t, "1.4.550")
	guid, tj, lines := f.deployV1(t, "pub1", "doc", bundle)
	if tj.Code != 0 {
		t.Fatalf("deploy: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	renderedWith(t, "first deploy", root, "1.4.550", lines)

	var patched map[string]any
	f.must(t, "PATCH", "/__api__/v1/content/"+guid, "pub1", `{"quarto_version":"1.3.450"}`, &patched)
	if patched["quarto_version"] != "1.4.550" || patched["quarto_version_requested"] != "1.3.450" {
		t.Fatalf("PATCH quarto_version 1.3.450 answered quarto_version %v, quarto_version_requested %v; want 1.4.550 (used) and 1.3.450",
			patched["quarto_version"], patched["quarto_version_requested"])
	}

	// The active bundle keeps the version its environment was made with.
	tj, lines = f.renderV1(t, "pub1", guid)
	if tj.Code != 0 {
		t.Fatalf("render on request: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	renderedWith(t, "render on request of the active bundle", root, "1.4.550", lines)

	_, tj, lines = f.deployV1(t, "pub1", "doc", bundle)
	if tj.Code != 0 {
		t.Fatalf("deploy with 1.3.450 requested: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	renderedWith(t, "deploy with 1.3.450 requested", root, "1.3.450", lines)
	if out := strings.Join(lines, "\n"); !strings.Contains(out, `for the requested "1.3.450" (set on the content; the manifest asks for "1.4.550")`) {
		t.Errorf("the task output does not say where the version came from:\n%s", out)
	}
	if used, requested := f.contentVersions(t, guid); used != "1.3.450" || requested != "1.3.450" {
		t.Fatalf("after the deploy: quarto_version %q, quarto_version_requested %q; want 1.3.450 and 1.3.450", used, requested)
	}

	f.must(t, "PATCH", "/__api__/v1/content/"+guid, "pub1", `{"quarto_version":""}`, nil)
	if used, requested := f.contentVersions(t, guid); used != "1.3.450" || requested != "" {
		t.Fatalf("after clearing: quarto_version %q, quarto_version_requested %q; want 1.3.450 and none", used, requested)
	}
	_, tj, lines = f.deployV1(t, "pub1", "doc", bundle)
	if tj.Code != 0 {
		t.Fatalf("deploy after clearing: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	renderedWith(t, "deploy after clearing the request", root, "1.4.550", lines)
	if used, _ := f.contentVersions(t, guid); used != "1.4.550" {
		t.Fatalf("after the deploy: quarto_version %q, want the manifest's 1.4.550", used)
	}
}

// POST and PATCH of r_version, py_version and quarto_version set the
// requests ("" and null clear them); the fields themselves read back the
// versions used, none before a deploy.
func TestVersionFieldsSetRequests(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	var c map[string]any
	f.must(t, "POST", "/__api__/v1/content", "pub1",
		`{"name":"v","r_version":"4.4.1","py_version":"3.12","quarto_version":"1.5.57"}`, &c)
	guid, _ := c["guid"].(string)
	check := func(when string, want map[string]any) {
		t.Helper()
		var got map[string]any
		f.must(t, "GET", "/__api__/v1/content/"+guid, "pub1", nil, &got)
		for _, lang := range []string{"r", "py", "quarto"} {
			if v := got[lang+"_version"]; v != nil {
				t.Errorf("%s: %s_version = %v, want null (nothing deployed)", when, lang, v)
			}
			k := lang + "_version_requested"
			if v, ok := got[k]; v != want[k] || ok != (want[k] != nil) {
				t.Errorf("%s: %s = %v (present %v), want %v", when, k, v, ok, want[k])
			}
		}
	}
	check("after POST", map[string]any{"r_version_requested": "4.4.1", "py_version_requested": "3.12", "quarto_version_requested": "1.5.57"})
	f.must(t, "PATCH", "/__api__/v1/content/"+guid, "pub1", `{"r_version":"","py_version":null,"quarto_version":"1.6"}`, nil)
	check("after PATCH", map[string]any{"quarto_version_requested": "1.6"})
	if a := f.do(t, "PATCH", "/__api__/v1/content/"+guid, "pub1", `{"py_version":3.12}`); a.status != 400 {
		t.Errorf("PATCH py_version 3.12 (a number) = %d %s, want 400", a.status, a.body)
	}
}
