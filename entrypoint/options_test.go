package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/entrypoint/setup"
	"github.com/dais-dev/dais/server/config"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		want    options
		stop    time.Duration // resolved with a 60s Server.StopTimeout
		wantErr string
	}{
		{name: "defaults", want: options{Config: "/etc/rstudio-connect/rstudio-connect.gcfg", Rendered: DefaultRendered, Stop: "auto", Forward: "group"}, stop: 70 * time.Second},
		{name: "environment", env: []string{"DAIS_INIT_STOP_TIMEOUT=2m", "DAIS_INIT_SKIP_CHECKS=cap, Runtimes", "DAIS_INIT_FORWARD_TO=child", "DAIS_INIT_CONFIG=/c.gcfg", "DAIS_INIT_RENDERED=/r.gcfg"},
			want: options{Config: "/c.gcfg", Rendered: "/r.gcfg", Stop: "2m", Skip: []string{"cap", "runtimes"}, Forward: "child"}, stop: 2 * time.Minute},
		{name: "flags win over the environment, command kept whole", env: []string{"DAIS_INIT_STOP_TIMEOUT=2m"}, args: []string{"--stop-timeout", "5", "bash", "-c", "--config x"},
			want: options{Config: "/etc/rstudio-connect/rstudio-connect.gcfg", Rendered: DefaultRendered, Stop: "5", Forward: "group", Args: []string{"bash", "-c", "--config x"}}, stop: 5 * time.Second},
		{name: "double dash", args: []string{"--", "--weird"},
			want: options{Config: "/etc/rstudio-connect/rstudio-connect.gcfg", Rendered: DefaultRendered, Stop: "auto", Forward: "group", Args: []string{"--weird"}}, stop: 70 * time.Second},
		{name: "bad stop timeout", args: []string{"--stop-timeout", "soon"}, wantErr: `--stop-timeout / DAIS_INIT_STOP_TIMEOUT is "soon": want auto or a positive duration like 90s or 2m`},
		{name: "bad forward", env: []string{"DAIS_INIT_FORWARD_TO=pgrp"}, wantErr: `--forward-to / DAIS_INIT_FORWARD_TO is "pgrp": want group or child`},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "flag provided but not defined: -nope (dais-init --help lists the flags)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, tt.env)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*o, tt.want) {
				t.Errorf("got %+v\nwant %+v", *o, tt.want)
			}
			if d, _ := o.stopTimeout(60 * time.Second); d != tt.stop {
				t.Errorf("stop timeout %v, want %v", d, tt.stop)
			}
		})
	}
}

func TestServerArgs(t *testing.T) {
	const base, rendered = "/etc/rstudio-connect/rstudio-connect.gcfg", "/run/dais/r.gcfg"
	tests := []struct {
		args   []string
		server bool
		want   string
	}{
		{nil, true, "dais serve --config /run/dais/r.gcfg"},
		{[]string{"dais", "serve"}, true, "dais serve --config /run/dais/r.gcfg"},
		{[]string{"/usr/local/bin/dais", "serve", "--config", base}, true, "/usr/local/bin/dais serve --config /run/dais/r.gcfg"},
		{[]string{"dais", "serve", "--config=" + base, "-v"}, true, "dais serve --config=/run/dais/r.gcfg -v"},
		{[]string{"dais", "serve", "--config", "/other.gcfg"}, true, "dais serve --config /other.gcfg"},
		{[]string{"dais", "config", "check"}, false, ""},
		{[]string{"bash"}, false, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if got := serverCommand(tt.args); got != tt.server {
				t.Fatalf("serverCommand = %v", got)
			}
			if !tt.server {
				return
			}
			if got := strings.Join(serverArgs(tt.args, base, rendered), " "); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestChildEnv(t *testing.T) {
	in := []string{"PATH=/bin", "CONNECT_POSTGRES_PASSWORD=x", "CONNECT_UNKNOWN_THING=y", "RSC_LICENSE_SERVER=l:1", "MY_VAR=z", "HOME=/root"}
	want := []string{"PATH=/bin", "MY_VAR=z", "HOME=/root"}
	if got := childEnv(in); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// Every variable the configuration consumes is one childEnv drops.
	environ := append(in, "CONNECT_SERVER_ADDRESS=https://x.example/", "CONNECT_HTTP_LISTEN=:4000")
	l, err := config.Load("", environ)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.ConsumedEnv) < 3 {
		t.Fatalf("consumed only %q", l.ConsumedEnv)
	}
	kept := strings.Join(childEnv(environ), "\n")
	for _, c := range l.ConsumedEnv {
		if strings.Contains(kept, c+"=") {
			t.Errorf("the configuration consumes %s, the child keeps it", c)
		}
	}
}

// dais-init links nothing of the server: the few facts it needs from it are
// constants here, kept equal to their sources.
func TestServerConstants(t *testing.T) {
	if defaultConfig != config.DefaultPath {
		t.Errorf("defaultConfig %q, config.DefaultPath %q", defaultConfig, config.DefaultPath)
	}
	if d := config.Defaults().Server.StopTimeout.Std(); defaultServerStop != d {
		t.Errorf("defaultServerStop %v, Server.StopTimeout default %v", defaultServerStop, d)
	}
	if !reflect.DeepEqual(checkNames, setup.CheckNames) {
		t.Errorf("checkNames %q, setup.CheckNames %q", checkNames, setup.CheckNames)
	}
	if setupCommand != setup.Command {
		t.Errorf("setupCommand %q, setup.Command %q", setupCommand, setup.Command)
	}
}
