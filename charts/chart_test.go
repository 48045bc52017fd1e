// Package charts tests the Helm chart in charts/dais: helm lint, and the
// manifests helm template renders, read as Kubernetes objects. No cluster
// runs them here (none can run on the build machine); these tests check
// what the chart asks of one.
package charts

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// helmBin finds helm: DAIS_HELM (scripts/test-env.sh writes it), then
// PATH, then `go env GOPATH`/bin. Without it the tests skip, except in CI,
// where they fail.
func helmBin(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("DAIS_HELM"); h != "" {
		return h
	}
	if h, err := exec.LookPath("helm"); err == nil {
		return h
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		h := filepath.Join(strings.TrimSpace(string(out)), "bin", "helm")
		if _, err := os.Stat(h); err == nil {
			return h
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("helm not found (DAIS_HELM, PATH, GOPATH/bin): scripts/test-env.sh installs it")
	}
	t.Skip("helm not found: go install helm.sh/helm/v4/cmd/helm@v4.3.2, or run scripts/test-env.sh")
	return ""
}

// The least a working install needs.
var required = []string{"postgres.url=postgres://dais@pg.example.com:5432/dais?sslmode=require", "postgres.password=pg-secret"}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func setArgs(sets []string) []string {
	var a []string
	for _, s := range sets {
		a = append(a, "--set", s)
	}
	return a
}

// obj is one rendered Kubernetes object.
type obj map[string]any

// get walks a path of map keys and list indexes ("spec.template.spec.containers.0").
func (o obj) get(path string) any {
	var cur any = map[string]any(o)
	for _, k := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case obj: // yaml.v3 decodes nested mappings as the outer map's type
			cur = c[k]
		case map[string]any:
			cur = c[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// asObj is v as an obj (nil when it is no mapping).
func asObj(v any) obj {
	switch m := v.(type) {
	case obj:
		return m
	case map[string]any:
		return obj(m)
	}
	return nil
}

// annotations are the object's metadata.annotations (their keys have dots).
func (o obj) annotations() map[string]any {
	return asObj(o.get("metadata.annotations"))
}

func (o obj) str(path string) string {
	v := o.get(path)
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// render runs helm template with sets and returns the objects by kind.
func render(t *testing.T, sets ...string) map[string]obj {
	t.Helper()
	out, err := helm(t, append([]string{"template", "rel", "dais", "--namespace", "ns"}, setArgs(sets)...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	objs := map[string]obj{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o obj
		if err := dec.Decode(&o); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("rendered YAML: %v\n%s", err, out)
		}
		if o == nil {
			continue
		}
		kind := o.str("kind")
		if _, dup := objs[kind]; dup {
			t.Fatalf("two objects of kind %s", kind)
		}
		objs[kind] = o
	}
	return objs
}

func envOf(t *testing.T, c obj) map[string]obj {
	t.Helper()
	out := map[string]obj{}
	list, _ := c.get("env").([]any)
	for _, e := range list {
		m := asObj(e)
		out[m.str("name")] = m
	}
	return out
}

func TestChartLint(t *testing.T) {
	out, err := helm(t, append([]string{"lint", "--strict", "dais"}, setArgs(required)...)...)
	if err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	// Without a database the chart refuses to render, naming the value.
	out, err = helm(t, "template", "rel", "dais", "--set", "postgres.password=x")
	if err == nil || !strings.Contains(out, "postgres.url is required") {
		t.Fatalf("template without postgres.url: err %v\n%s", err, out)
	}
	out, err = helm(t, "template", "rel", "dais", "--set", required[0])
	if err == nil || !strings.Contains(out, "postgres.password or postgres.existingSecret is required") {
		t.Fatalf("template without a password: err %v\n%s", err, out)
	}
}

// TestChartDefaults: what the default values ask of a cluster.
func TestChartDefaults(t *testing.T) {
	objs := render(t, append(required, "ingress.enabled=true")...)
	for _, k := range []string{"Deployment", "Service", "Ingress", "PersistentVolumeClaim", "ConfigMap", "Secret", "PodDisruptionBudget"} {
		if objs[k] == nil {
			t.Fatalf("no %s rendered", k)
		}
	}
	d := objs["Deployment"]
	if d.str("spec.replicas") != "2" {
		t.Errorf("replicas = %s, want 2", d.str("spec.replicas"))
	}
	// Rolling update: a new pod beside each old one, none taken away first.
	if d.str("spec.strategy.type") != "RollingUpdate" || d.str("spec.strategy.rollingUpdate.maxUnavailable") != "0" || d.str("spec.strategy.rollingUpdate.maxSurge") != "1" {
		t.Errorf("strategy = %v", d.get("spec.strategy"))
	}
	pod := asObj(d.get("spec.template.spec"))
	c := asObj(pod.get("containers.0"))

	// Grace: Server.StopTimeout 60 s < dais-init 70 s < Kubernetes 90 s.
	if pod.str("terminationGracePeriodSeconds") != "90" {
		t.Errorf("terminationGracePeriodSeconds = %s, want 90", pod.str("terminationGracePeriodSeconds"))
	}
	env := envOf(t, c)
	if v := env["DAIS_INIT_STOP_TIMEOUT"].str("value"); v != "70s" {
		t.Errorf("DAIS_INIT_STOP_TIMEOUT = %q, want 70s", v)
	}
	gcfg := gcfgOf(objs)
	for _, want := range []string{"StopTimeout = 60s", "DrainDelay = 10s", "Provider = postgres", "DataDir = /data", `URL = "postgres://dais@pg.example.com:5432/dais?sslmode=require"`} {
		if !strings.Contains(gcfg, want) {
			t.Errorf("configuration lacks %q:\n%s", want, gcfg)
		}
	}
	if strings.Contains(gcfg, "pg-secret") {
		t.Error("the PostgreSQL password is in the ConfigMap")
	}

	// The node's name is the pod's; the password comes from the Secret.
	if env["DAIS_NODE_NAME"].str("valueFrom.fieldRef.fieldPath") != "metadata.name" {
		t.Errorf("DAIS_NODE_NAME = %v", env["DAIS_NODE_NAME"])
	}
	if env["DAIS_NODE_ADDRESS"].str("value") != "$(POD_IP):3939" || env["POD_IP"].str("valueFrom.fieldRef.fieldPath") != "status.podIP" {
		t.Errorf("DAIS_NODE_ADDRESS = %v, POD_IP = %v", env["DAIS_NODE_ADDRESS"], env["POD_IP"])
	}
	sec := objs["Secret"]
	pw := env["CONNECT_POSTGRES_PASSWORD"]
	if pw.str("valueFrom.secretKeyRef.name") != sec.str("metadata.name") || pw.str("valueFrom.secretKeyRef.key") != "password" {
		t.Errorf("CONNECT_POSTGRES_PASSWORD = %v; Secret %s", pw, sec.str("metadata.name"))
	}
	if b, _ := base64.StdEncoding.DecodeString(sec.str("data.password")); string(b) != "pg-secret" {
		t.Errorf("Secret password = %q", b)
	}
	for name, e := range env {
		if strings.Contains(e.str("value"), "pg-secret") {
			t.Errorf("the password is in the pod spec, in %s", name)
		}
	}

	// Probes: readiness on /__ping__ (503 while draining or without the
	// database); no liveness probe.
	if c.str("readinessProbe.httpGet.path") != "/__ping__" || c.str("readinessProbe.httpGet.port") != "http" {
		t.Errorf("readinessProbe = %v", c.get("readinessProbe"))
	}
	if c.get("livenessProbe") != nil {
		t.Errorf("livenessProbe = %v, want none", c.get("livenessProbe"))
	}
	if c.str("startupProbe.httpGet.path") != "/__ping__" {
		t.Errorf("startupProbe = %v", c.get("startupProbe"))
	}
	if c.str("ports.0.containerPort") != "3939" || c.str("ports.0.name") != "http" {
		t.Errorf("ports = %v", c.get("ports"))
	}

	// Volumes: the shared claim on /data (ReadWriteMany), the ConfigMap on
	// the configuration file, writable /run/dais and /tmp.
	mounts := map[string]string{}
	for _, m := range c.get("volumeMounts").([]any) {
		mm := asObj(m)
		mounts[mm.str("mountPath")] = mm.str("name")
	}
	vols := map[string]obj{}
	for _, v := range pod.get("volumes").([]any) {
		vv := asObj(v)
		vols[vv.str("name")] = vv
	}
	pvc := objs["PersistentVolumeClaim"]
	if vols[mounts["/data"]].str("persistentVolumeClaim.claimName") != pvc.str("metadata.name") {
		t.Errorf("/data is %v; the claim is %s", vols[mounts["/data"]], pvc.str("metadata.name"))
	}
	if pvc.str("spec.accessModes.0") != "ReadWriteMany" {
		t.Errorf("claim access modes = %v", pvc.get("spec.accessModes"))
	}
	if pa := pvc.annotations(); pa["helm.sh/resource-policy"] != "keep" {
		t.Errorf("claim annotations = %v: helm uninstall would delete every bundle", pa)
	}
	if vols[mounts["/etc/rstudio-connect/rstudio-connect.gcfg"]].str("configMap.name") != objs["ConfigMap"].str("metadata.name") {
		t.Errorf("configuration volume = %v", vols[mounts["/etc/rstudio-connect/rstudio-connect.gcfg"]])
	}
	for _, p := range []string{"/run/dais", "/tmp"} {
		if vols[mounts[p]].get("emptyDir") == nil {
			t.Errorf("%s is not an emptyDir: %v", p, vols[mounts[p]])
		}
	}
	if d.str("spec.template.metadata.annotations.checksum/config") == "" {
		t.Error("no checksum/config annotation: a changed configuration would not roll the pods")
	}

	// No privilege asked: non-root uid 999, no capability, no escalation,
	// RuntimeDefault seccomp, read-only root (the restricted Pod Security
	// Standard).
	psc := asObj(pod.get("securityContext"))
	csc := asObj(c.get("securityContext"))
	if psc.str("runAsNonRoot") != "true" || psc.str("runAsUser") != "999" || psc.str("fsGroup") != "999" || psc.str("seccompProfile.type") != "RuntimeDefault" {
		t.Errorf("pod securityContext = %v", psc)
	}
	if csc.str("allowPrivilegeEscalation") != "false" || csc.str("capabilities.drop.0") != "ALL" || csc.get("capabilities.add") != nil ||
		csc.get("privileged") != nil || csc.str("readOnlyRootFilesystem") != "true" {
		t.Errorf("container securityContext = %v", csc)
	}

	// Stickiness for ingress-nginx; the Service carries none.
	ing := objs["Ingress"]
	ann := ing.annotations()
	if ann["nginx.ingress.kubernetes.io/affinity"] != "cookie" || ann["nginx.ingress.kubernetes.io/session-cookie-name"] != "dais-node" ||
		ann["nginx.ingress.kubernetes.io/proxy-body-size"] != "0" {
		t.Errorf("ingress annotations = %v", ann)
	}
	if ing.str("spec.rules.0.http.paths.0.backend.service.name") != objs["Service"].str("metadata.name") {
		t.Errorf("ingress backend = %v", ing.get("spec.rules.0.http.paths.0.backend"))
	}
	if objs["Service"].get("metadata.annotations") != nil {
		t.Errorf("service annotations = %v, want none", objs["Service"].get("metadata.annotations"))
	}
	if objs["PodDisruptionBudget"].str("spec.minAvailable") != "1" {
		t.Errorf("PDB = %v", objs["PodDisruptionBudget"].get("spec"))
	}
}

// TestChartVariants: Traefik stickiness, an existing Secret, one replica,
// a longer stop timeout.
func TestChartVariants(t *testing.T) {
	objs := render(t, required[0], "ingress.enabled=true", "ingress.sticky=traefik", "postgres.existingSecret=pg",
		"postgres.existingSecretKey=pw", "replicas=1", "stopTimeoutSeconds=120", "sharedStorage.existingClaim=nfs-data")
	if objs["Secret"] != nil || objs["PodDisruptionBudget"] != nil || objs["PersistentVolumeClaim"] != nil {
		t.Fatalf("rendered a Secret, PDB or claim it should not: %v", keys(objs))
	}
	ann := objs["Service"].annotations()
	if ann["traefik.ingress.kubernetes.io/service.sticky.cookie"] != "true" || ann["traefik.ingress.kubernetes.io/service.sticky.cookie.name"] != "dais-node" {
		t.Errorf("service annotations = %v", ann)
	}
	if ia := objs["Ingress"].annotations(); ia["nginx.ingress.kubernetes.io/affinity"] != nil {
		t.Errorf("nginx annotations with traefik stickiness: %v", ia)
	}
	pod := asObj(objs["Deployment"].get("spec.template.spec"))
	if pod.str("terminationGracePeriodSeconds") != "150" {
		t.Errorf("terminationGracePeriodSeconds = %s, want 150", pod.str("terminationGracePeriodSeconds"))
	}
	env := envOf(t, asObj(pod.get("containers.0")))
	if env["DAIS_INIT_STOP_TIMEOUT"].str("value") != "130s" {
		t.Errorf("DAIS_INIT_STOP_TIMEOUT = %v", env["DAIS_INIT_STOP_TIMEOUT"])
	}
	if r := env["CONNECT_POSTGRES_PASSWORD"]; r.str("valueFrom.secretKeyRef.name") != "pg" || r.str("valueFrom.secretKeyRef.key") != "pw" {
		t.Errorf("CONNECT_POSTGRES_PASSWORD = %v", r)
	}
	if pod.str("volumes.0.persistentVolumeClaim.claimName") != "nfs-data" {
		t.Errorf("data volume = %v", pod.get("volumes.0"))
	}
	if !strings.Contains(gcfgOf(objs), "StopTimeout = 120s") {
		t.Error("StopTimeout not 120s in the configuration")
	}
}

// TestChartConfigChecks: the configuration file the chart renders, with
// an admin's extra lines, passes `dais config check`.
func TestChartConfigChecks(t *testing.T) {
	objs := render(t, append(required, "serverAddress=https://dais.example.com/", "config=[Applications]\nBundleMaxFiles = 5000")...)
	gcfg := gcfgOf(objs)
	dir := t.TempDir()
	path := filepath.Join(dir, "rstudio-connect.gcfg")
	if err := os.WriteFile(path, []byte(gcfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "dais")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dais-dev/dais/server").CombinedOutput(); err != nil {
		t.Fatalf("build dais: %v\n%s", err, out)
	}
	for _, sub := range []string{"check", "print"} {
		cmd := exec.Command(bin, "config", sub, "--config", path)
		cmd.Env = append(os.Environ(), "CONNECT_POSTGRES_PASSWORD=pg-secret")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dais config %s on the chart's configuration: %v\n%s\n%s", sub, err, out, gcfg)
		}
	}
	cmd := exec.Command(bin, "config", "print", "--config", path)
	cmd.Env = append(os.Environ(), "CONNECT_POSTGRES_PASSWORD=pg-secret")
	out, _ := cmd.CombinedOutput()
	for _, want := range []string{"BundleMaxFiles = 5000", "DrainDelay = 10s", `Address = "https://dais.example.com/"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("effective configuration lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "warning") {
		t.Errorf("warnings on the chart's configuration:\n%s", out)
	}
}

// gcfgOf is the configuration file in the rendered ConfigMap.
func gcfgOf(objs map[string]obj) string {
	s, _ := asObj(objs["ConfigMap"].get("data"))["rstudio-connect.gcfg"].(string)
	return s
}

func keys(m map[string]obj) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}
