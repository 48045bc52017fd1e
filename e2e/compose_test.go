package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// TestComposeConfig: the compose file is valid for the installed compose,
// with and without each profile, and keeps what the contract needs.
func TestComposeConfig(t *testing.T) {
	tests := []struct {
		name     string
		profiles []string
		want     []string
	}{
		{"default", nil, []string{"dais-data", "stop_grace_period: 2m", "dais\n      - health"}},
		{"postgres", []string{"postgres"}, []string{"CONNECT_DATABASE_PROVIDER: postgres", "condition: service_healthy", "postgres-data"}},
		{"ha", []string{"ha"}, []string{"DAIS_NODE_NAME: dais1", "DAIS_NODE_NAME: dais2", "ha-data:/data", "dais-haproxy:latest", "ha-db", "ha-front"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			for _, p := range tt.profiles {
				args = append(args, "--profile", p)
			}
			out, err := Compose(t, "dais-config-check", nil, append(args, "config")...)
			if err != nil {
				t.Fatalf("compose config: %v\n%s", err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("compose config output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestComposePostgresProfile brings the postgres profile up from the built
// images and waits for every service to be healthy, then for the
// PostgreSQL-backed dais to answer.
func TestComposePostgresProfile(t *testing.T) {
	img := Image(t)
	pgImg := os.Getenv("DAIS_PG_IMAGE")
	if pgImg == "" {
		pgImg = "dais-postgres:latest"
	}
	cli := Docker(t)
	if _, err := cli.ImageInspect(context.Background(), pgImg); err != nil {
		requireOrSkip(t, "image %s not found: %v (run `make image`, or set DAIS_PG_IMAGE)", pgImg, err)
	}
	project := ProjectName(t)
	env := []string{
		"DAIS_IMAGE=" + img,
		"DAIS_PG_IMAGE=" + pgImg,
		"DAIS_BIND=127.0.0.1",
		"DAIS_PORT=" + freePort(t),
		"DAIS_POSTGRES_PORT=" + freePort(t),
		"POSTGRES_PASSWORD=pw-" + randomSuffix(),
	}
	ComposeDown(t, project, env, "postgres")
	start := time.Now()
	if out, err := Compose(t, project, env, "--profile", "postgres", "up", "-d", "--no-build"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	want := []string{"dais", "dais-postgres", "postgres"}
	waitComposeHealthy(t, cli, project, want, 3*time.Minute)
	t.Logf("postgres profile: %v healthy %s after up", want, time.Since(start).Round(time.Millisecond))

	port := env[4][len("DAIS_POSTGRES_PORT="):]
	resp, err := http.Get("http://127.0.0.1:" + port + "/__ping__")
	if err != nil {
		t.Fatalf("GET /__ping__ of dais-postgres: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /__ping__ of dais-postgres = %s, want 200", resp.Status)
	}
}

// waitComposeHealthy waits until each service of project has a container
// whose health is "healthy".
func waitComposeHealthy(t *testing.T, cli *client.Client, project string, services []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	state := map[string]string{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		list, err := cli.ContainerList(ctx, client.ContainerListOptions{
			All:     true,
			Filters: make(client.Filters).Add("label", "com.docker.compose.project="+project),
		})
		cancel()
		if err != nil {
			t.Fatalf("list containers of %s: %v", project, err)
		}
		healthy := 0
		for _, s := range services {
			state[s] = "missing"
		}
		for _, c := range list.Items {
			svc := c.Labels["com.docker.compose.service"]
			if _, ok := state[svc]; !ok {
				continue
			}
			in, err := cli.ContainerInspect(context.Background(), c.ID, client.ContainerInspectOptions{})
			if err != nil {
				t.Fatalf("inspect %s: %v", svc, err)
			}
			st := in.Container.State
			switch {
			case !st.Running:
				t.Fatalf("service %s exited with code %d", svc, st.ExitCode)
			case st.Health == nil:
				state[svc] = "no health check"
			default:
				state[svc] = string(st.Health.Status)
				if st.Health.Status == container.Healthy {
					healthy++
				}
			}
		}
		if healthy == len(services) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("services not healthy within %s: %v", timeout, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
