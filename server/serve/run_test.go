package serve

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRunReloadUnderLoad runs the server in-process (so -race sees it),
// reloads it repeatedly while clients hammer it, then stops it.
func TestRunReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	write := func(i int) {
		text := fmt.Sprintf("[Server]\nDataDir = %s\nPublicWarning = \"v%d\"\n[HTTP]\nListen = 127.0.0.1:0\n[Logging]\nServiceLogFormat = %s\n",
			filepath.Join(dir, "data"), i, []string{"TEXT", "JSON"}[i%2])
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	reload := make(chan os.Signal)
	ready := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			ConfigPath: cfgPath, Environ: []string{}, Version: "test",
			Stdout: io.Discard, Stderr: io.Discard, Reload: reload,
			OnReady: func(a net.Addr) { ready <- a },
		})
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready after 30 s")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, p := range []string{"/", "/__ping__", "/__api__/server_settings"} {
					resp, err := c.Get("http://" + addr.String() + p)
					if err != nil || resp.StatusCode != 200 {
						mu.Lock()
						failures++
						mu.Unlock()
					}
					if resp != nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}
		})
	}
	for i := 1; i <= 20; i++ {
		write(i)
		reload <- syscall.SIGHUP
		time.Sleep(10 * time.Millisecond)
	}
	// The last reload is in force.
	reload <- syscall.SIGHUP // the loop has taken the previous one once this is received
	resp, err := http.Get("http://" + addr.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "v20") {
		t.Errorf("welcome page lacks the last PublicWarning v20")
	}
	close(stop)
	wg.Wait()
	if failures > 0 {
		t.Errorf("%d requests failed during reloads", failures)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return 15 s after its context ended")
	}
}
