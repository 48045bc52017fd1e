package process

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/dais-dev/dais/server/sandbox"
)

// SandboxLauncher starts each process in the sandbox (`dais sandbox-exec`,
// daisPath "" meaning this executable), with the options build returns for
// the port: typically content.LaunchArgs' Args, Env, PathDirs and Dir on
// top of the content's CodeDir, WorkDir, ReadOnly runtimes and env, Masks
// and RunAs. SIGTERM reaches the app through the sandbox's init; when the
// pool's context ends, the whole sandbox is killed.
func SandboxLauncher(daisPath string, build func(port int) (sandbox.Options, error)) Launcher {
	return func(ctx context.Context, port int, log io.Writer) (Process, error) {
		o, err := build(port)
		if err != nil {
			return nil, err
		}
		spec, err := sandbox.Spec(o)
		if err != nil {
			return nil, err
		}
		cmd, err := sandbox.Command(ctx, daisPath, spec)
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = log, log
		// A process of the app killed for its memory limit while the app
		// goes on (gunicorn starts a new worker): said in its log.
		cmd.OnLimit = func(reason string) { fmt.Fprintf(log, "dais: %s\n", reason) }
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return sandboxProcess{cmd, port, log}, nil
	}
}

type sandboxProcess struct {
	c    *sandbox.Cmd
	port int
	log  io.Writer
}

// Wait waits for the sandbox; when dais knows why it ended (its memory
// limit), the error says so and the process log gets the line.
func (s sandboxProcess) Wait() error {
	err := s.c.Wait()
	if r := s.c.ExitReason(); r != "" {
		if s.log != nil {
			fmt.Fprintf(s.log, "dais: %s\n", r)
		}
		return fmt.Errorf("%s (%v)", r, err)
	}
	return err
}

func (s sandboxProcess) Signal(sig os.Signal) error { return s.c.Signal(sig) }

// Dial reaches the port inside the sandbox's network namespace (namespaces
// mode) or on the server's loopback (Landlock mode).
func (s sandboxProcess) Dial(ctx context.Context) (net.Conn, error) {
	return s.c.DialContext(ctx, "tcp", loopbackAddr(s.port))
}
