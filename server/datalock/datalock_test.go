package datalock

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMain doubles as a lock holder: with DATALOCK_HOLD=dir the test binary
// takes the lock, prints "locked", and holds it until stdin closes.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DATALOCK_HOLD"); dir != "" {
		release, err := Acquire(dir)
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		_ = release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdInChild starts another process that holds the lock on dir; the
// returned func makes it release the lock and exit.
func holdInChild(t *testing.T, dir string) (pid int, stop func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "DATALOCK_HOLD="+dir)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder: %q %v", line, err)
	}
	return cmd.Process.Pid, func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("holder: %v", err)
		}
	}
}

func TestAcquire(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, dir string)
	}{
		{"free directory locks and creates the file with mode 0600", func(t *testing.T, dir string) {
			release, err := Acquire(dir)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(Path(dir))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
			b, _ := os.ReadFile(Path(dir))
			if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
				t.Errorf("lock file holds %q, want our pid", b)
			}
			if err := release(); err != nil {
				t.Fatal(err)
			}
			if err := release(); err != nil {
				t.Errorf("second release: %v", err)
			}
		}},
		{"second acquire in the same process is refused until released", func(t *testing.T, dir string) {
			release, err := Acquire(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Acquire(dir); !errors.Is(err, ErrLocked) {
				t.Fatalf("second Acquire: %v, want ErrLocked", err)
			}
			if err := Probe(dir); !errors.Is(err, ErrLocked) {
				t.Fatalf("Probe while held: %v, want ErrLocked", err)
			}
			release()
			r2, err := Acquire(dir)
			if err != nil {
				t.Fatalf("Acquire after release: %v", err)
			}
			r2()
		}},
		{"lock held by another process is refused and names its pid", func(t *testing.T, dir string) {
			pid, stop := holdInChild(t, dir)
			_, err := Acquire(dir)
			if !errors.Is(err, ErrLocked) {
				stop()
				t.Fatalf("Acquire: %v, want ErrLocked", err)
			}
			if !strings.Contains(err.Error(), "pid "+strconv.Itoa(pid)) {
				t.Errorf("error %q does not name holder pid %d", err, pid)
			}
			stop()
			if err := Probe(dir); err != nil {
				t.Errorf("Probe after holder exited: %v", err)
			}
		}},
		{"probe of a missing directory is free and creates nothing", func(t *testing.T, dir string) {
			missing := filepath.Join(dir, "nope")
			if err := Probe(missing); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Probe created %s", missing)
			}
		}},
		{"missing directory is created by Acquire", func(t *testing.T, dir string) {
			sub := filepath.Join(dir, "a", "db")
			release, err := Acquire(sub)
			if err != nil {
				t.Fatal(err)
			}
			release()
			if _, err := os.Stat(Path(sub)); err != nil {
				t.Error(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, t.TempDir()) })
	}
}
