package serve

import (
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
)

func TestApplyReloadable(t *testing.T) {
	cur := config.Defaults()
	cur.Server.DataDir = "/data"
	cur.Server.PublicWarning = "old"
	next := config.Defaults()
	next.Server.DataDir = "/elsewhere"
	next.HTTP.Listen = ":4000"
	next.Server.PublicWarning = "new"
	next.Server.LoggedInWarning = "inside"
	next.Server.StopTimeout = config.Duration(5 * time.Second)
	next.Scheduler.MaxProcesses = 9
	next.Logging.ServiceLogLevel = "DEBUG"
	next.Logging.AccessLog = false

	changed, restart := config.Diff(cur, next)
	got, err := applyReloadable(cur, next, changed)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"Server.PublicWarning", got.Server.PublicWarning, "new"},
		{"Server.LoggedInWarning", got.Server.LoggedInWarning, "inside"},
		{"Server.StopTimeout", got.Server.StopTimeout, config.Duration(5 * time.Second)},
		{"Scheduler.MaxProcesses", got.Scheduler.MaxProcesses, 9},
		{"Logging.ServiceLogLevel", got.Logging.ServiceLogLevel, "DEBUG"},
		{"Logging.AccessLog", got.Logging.AccessLog, false},
		{"Server.DataDir (restart)", got.Server.DataDir, "/data"},
		{"HTTP.Listen (restart)", got.HTTP.Listen, ":3939"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	if strings.Join(restart, ",") != "Server.DataDir,HTTP.Listen" {
		t.Errorf("restart-required keys %v", restart)
	}
	if cur.Server.PublicWarning != "old" {
		t.Error("applyReloadable changed the running configuration in place")
	}
}

func TestLoggerSwitchesOnApply(t *testing.T) {
	var buf bytes.Buffer
	log, ctl, err := newLogger(&buf, config.Logging{ServiceLogLevel: "INFO", ServiceLogFormat: "TEXT"})
	if err != nil {
		t.Fatal(err)
	}
	child := log.With("component", "x")
	child.Debug("hidden")
	child.Info("as text")
	if err := ctl.apply(config.Logging{ServiceLogLevel: "debug", ServiceLogFormat: "json"}); err != nil {
		t.Fatal(err)
	}
	child.Debug("as json")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, `level=INFO msg="as text" component=x`) ||
		!strings.Contains(out, `"msg":"as json","component":"x"`) {
		t.Fatalf("log output:\n%s", out)
	}
	for _, bad := range []config.Logging{{ServiceLogLevel: "LOUD"}, {ServiceLogFormat: "XML"}} {
		if err := ctl.apply(bad); err == nil {
			t.Errorf("apply(%+v) accepted", bad)
		}
	}
}

func TestNotifier(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := (notifier{socket: path}).notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	if err := (notifier{}).notify("READY=1"); err != nil {
		t.Fatalf("no socket: %v", err)
	}
	if err := (notifier{socket: filepath.Join(t.TempDir(), "missing")}).notify("READY=1"); err == nil {
		t.Fatal("missing socket: no error")
	}
}
