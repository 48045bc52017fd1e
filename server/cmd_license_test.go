package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// licenseTestBinary builds the dais binary for a test into a temporary directory.
func licenseTestBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dais")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestLicenseServerCommand runs `dais license-server` from outside: flags,
// exit codes, a real run answering HTTP, and a TERM stop that keeps the
// leases for the next run.
func TestLicenseServerCommand(t *testing.T) {
	bin := licenseTestBinary(t)
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"--help"}, 0, "POST   /leases"},
		{"no seats", []string{"--seats", "0", "--db", filepath.Join(dir, "a.db"), "--listen", "127.0.0.1:0"}, 2, "--seats 1 or more"},
		{"bad ttl", []string{"--ttl", "0s", "--db", filepath.Join(dir, "a.db"), "--listen", "127.0.0.1:0"}, 2, "--ttl"},
		{"bad log format", []string{"--log-format", "xml"}, 2, "use text or json"},
		{"argument", []string{"extra"}, 2, "unexpected argument"},
		{"db under a file", []string{"--db", filepath.Join(blocker, "x.db"), "--listen", "127.0.0.1:0"}, 78, "--db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"license-server"}, tc.args...)...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("exit %d, want %d; output lacks %q?\n%s", code, tc.code, tc.want, out.String())
			}
		})
	}

	t.Run("serve, TERM, restart", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		db := filepath.Join(dir, "leases", "leases.db")
		run := func() (*exec.Cmd, *bytes.Buffer) {
			cmd := exec.Command(bin, "license-server", "--listen", addr, "--seats", "1", "--ttl", "1m", "--db", db, "--log-format", "json")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			for i := 0; ; i++ {
				if resp, err := http.Get("http://" + addr + "/__ping__"); err == nil {
					resp.Body.Close()
					break
				}
				if i > 100 {
					t.Fatalf("license server not answering:\n%s", out.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			return cmd, &out
		}
		term := func(cmd *exec.Cmd, out *bytes.Buffer) {
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("after TERM: %v\n%s", err, out)
			}
		}
		cmd, out := run()
		resp, err := http.Post("http://"+addr+"/leases", "application/json", strings.NewReader(`{"node":"n1"}`))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("acquire: %v %v", err, resp)
		}
		resp.Body.Close()
		term(cmd, out)
		for _, want := range []string{`"msg":"license server ready"`, `"msg":"license lease granted"`, `"node":"n1"`, `"msg":"license server stopped"`} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("log lacks %s:\n%s", want, out)
			}
		}
		cmd, out = run()
		defer term(cmd, out)
		if !strings.Contains(out.String(), `"leases_held":1`) {
			t.Errorf("restart: the lease was not kept:\n%s", out)
		}
		resp, err = http.Get("http://" + addr + "/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct {
			InUse int `json:"in_use"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.InUse != 1 {
			t.Errorf("status after restart: %+v %v", st, err)
		}
	})
}
