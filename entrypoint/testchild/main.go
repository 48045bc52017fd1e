// Command testchild is the child program of dais-init's black-box tests and
// of bench/init.sh. Its first argument picks what it does:
//
//	exit N              exit with code N
//	killself SIG        die of signal number SIG (through /bin/sh)
//	signals [group]     print "ready", then "child N" for every signal N
//	                    1..31 it gets (all but KILL, STOP, CHLD; build with
//	                    asyncpreemptoff=1 linked in, as dais-init is, or the
//	                    runtime's own URGs show) until stdin closes; with
//	                    group, a grandchild in the same process group prints
//	                    "grandchild N" too
//	cwd                 print "self DIR" (its working directory), then
//	                    "parent DIR" once its parent's is / (within 10 s)
//	ignore-term         ignore SIGTERM, print "ready", sleep until killed
//	orphans N wait      leave N orphans (cat processes) to dais-init, make
//	                    them all exit at once, and print "gone SECONDS" when
//	                    no process but itself and PID 1 is left
//	orphans N sleep1    the same, but print "zombies K" 1 s after the last exited
//	sigecho             print "ready", then a line for every SIGUSR1
//	latency K CMD...    run CMD (an init running "testchild sigecho"), send
//	                    SIGUSR1 to it K times, print p50 and p99 of the time
//	                    until the echo, in microseconds
//	rss PID             print VmHWM of PID in KiB
//	rsswith CMD...      run CMD (an init running "testchild sigecho") in its
//	                    own process group, print its VmHWM in KiB once the
//	                    child is ready, then kill the group
//
// Named "dais" (a symlink), it is a fake `dais serve`: it prints its
// arguments and its environment as /proc/self/environ has it, then exits 0;
// with FAKE_DAIS_THEN=signals it goes on as "signals" does. `dais init-setup`
// is the real one (package setup).
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dais-dev/dais/entrypoint/rawsig"
	"github.com/dais-dev/dais/entrypoint/setup"
)

func main() {
	if filepath.Base(os.Args[0]) == "dais" {
		if len(os.Args) > 1 && os.Args[1] == setup.Command {
			os.Exit(setup.Main(os.Args[2:], os.Environ(), os.Stdout, os.Stderr, "test"))
		}
		fakeDais()
		return
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testchild MODE ARGS...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "exit":
		os.Exit(atoi(args[0]))
	case "killself":
		// The Go runtime handles some signals itself (QUIT dumps and exits
		// 2): a shell dies of them the default way.
		err := syscall.Exec("/bin/sh", []string{"sh", "-c", "kill -" + strconv.Itoa(atoi(args[0])) + " $$; sleep 10; exit 99"}, os.Environ())
		fail(err)
	case "signals":
		signals("child", len(args) > 0 && args[0] == "group")
	case "cwd":
		cwd()
	case "signals-grandchild":
		signals("grandchild", false)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		for {
			time.Sleep(time.Hour)
		}
	case "orphans":
		orphans(atoi(args[0]), args[1])
	case "spawn":
		spawn(atoi(args[0]))
	case "sigecho":
		sigecho()
	case "latency":
		latency(atoi(args[0]), args[1:])
	case "rss":
		fmt.Println(vmHWM(atoi(args[0])))
	case "rsswith":
		rssWith(args)
	default:
		fmt.Fprintln(os.Stderr, "testchild: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testchild:", err)
		os.Exit(2)
	}
	return n
}

func fakeDais() {
	fmt.Printf("args %s\n", strings.Join(os.Args[1:], " "))
	b, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testchild:", err)
		os.Exit(1)
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if kv != "" {
			fmt.Printf("env %s\n", kv)
		}
	}
	if os.Getenv("FAKE_DAIS_THEN") == "signals" {
		signals("child", false)
	}
}

// signals reports every signal it receives, one write per line.
func signals(who string, group bool) {
	c := make(chan os.Signal, 64)
	var all []syscall.Signal
	for n := 1; n <= 31; n++ {
		switch s := syscall.Signal(n); s {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD,
			syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL:
			if s != syscall.SIGKILL && s != syscall.SIGSTOP && s != syscall.SIGCHLD {
				signal.Notify(c, s) // the runtime's own; kill delivers them here
			}
		default:
			all = append(all, s)
		}
	}
	if err := rawsig.Notify(c, all...); err != nil { // PROF too
		fail(err)
	}
	var gc *exec.Cmd
	if group {
		gc = exec.Command(os.Args[0], "signals-grandchild")
		gc.Stdin = os.Stdin
		gc.Stderr = os.Stderr
		out, _ := gc.StdoutPipe()
		if err := gc.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "testchild:", err)
			os.Exit(1)
		}
		r := bufio.NewReader(out)
		if l, _ := r.ReadString('\n'); l != "ready\n" {
			fmt.Fprintln(os.Stderr, "testchild: grandchild said", l)
			os.Exit(1)
		}
		go io.Copy(os.Stdout, r)
	}
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
	os.Stdout.WriteString("ready\n")
	for {
		select {
		case s := <-c:
			os.Stdout.WriteString(fmt.Sprintf("%s %d\n", who, int(s.(syscall.Signal))))
		case <-eof:
			if gc != nil {
				gc.Wait()
			}
			os.Exit(0)
		}
	}
}

// orphans leaves n cat processes to PID 1 (through a spawner that exits),
// then closes the pipe they read so all exit at once.
func orphans(n int, how string) {
	r, w, err := os.Pipe()
	if err != nil {
		fail(err)
	}
	sp := exec.Command(os.Args[0], "spawn", strconv.Itoa(n))
	sp.Stdin = r
	sp.Stderr = os.Stderr
	out, err := sp.Output() // the orphans' pids, one a line
	if err != nil {
		fail(fmt.Errorf("spawner: %w", err))
	}
	r.Close()
	var left []int
	for _, f := range strings.Fields(string(out)) {
		left = append(left, atoi(f))
	}
	if len(left) != n {
		fail(fmt.Errorf("spawner started %d of %d orphans", len(left), n))
	}
	t0 := time.Now()
	w.Close()
	switch how {
	case "wait":
		// kill(pid, 0) succeeds until the pid is reaped (zombies included),
		// and costs far less than reading /proc with thousands of entries.
		for len(left) > 0 {
			next := left[:0]
			for _, pid := range left {
				if syscall.Kill(pid, 0) == nil {
					next = append(next, pid)
				}
			}
			left = next
			if time.Since(t0) > 10*time.Minute {
				fail(fmt.Errorf("%d orphans still there after 10 min", len(left)))
			}
			if len(left) > 0 {
				time.Sleep(time.Millisecond)
			}
		}
		fmt.Printf("gone %.6f\n", time.Since(t0).Seconds())
	case "sleep1":
		// Under load the orphans take a while to exit: wait until none is
		// alive, then give the init 1 s to reap them.
		for {
			z := zombies()
			if alive := others() - z; alive <= 0 {
				break
			}
			if time.Since(t0) > 60*time.Second {
				fail(fmt.Errorf("orphans still alive after 60 s"))
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
		fmt.Printf("zombies %d\n", zombies())
	}
}

func spawn(n int) {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fail(err)
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		fail(err)
	}
	for i := 0; i < n; i++ {
		pid, err := syscall.ForkExec(cat, []string{"cat"}, &syscall.ProcAttr{Files: []uintptr{0, devnull.Fd(), devnull.Fd()}})
		if err != nil {
			fail(fmt.Errorf("orphan %d: %w", i, err))
		}
		fmt.Println(pid)
	}
}

// pids lists the processes in /proc but PID 1 and this one.
func pids() []string {
	d, err := os.Open("/proc")
	if err != nil {
		fail(err)
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	self := strconv.Itoa(os.Getpid())
	var out []string
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' || n == "1" || n == self {
			continue
		}
		out = append(out, n)
	}
	return out
}

func others() int { return len(pids()) }

// zombies counts processes in state Z.
func zombies() int {
	z := 0
	for _, p := range pids() {
		b, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) && s[i+2] == 'Z' {
			z++
		}
	}
	return z
}

// cwd reports its own working directory and, once it is /, its parent's
// (dais-init moves there right after starting the child).
func cwd() {
	self, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	fmt.Printf("self %s\n", self)
	link := fmt.Sprintf("/proc/%d/cwd", os.Getppid())
	var parent string
	for t0 := time.Now(); time.Since(t0) < 10*time.Second; time.Sleep(5 * time.Millisecond) {
		if parent, err = os.Readlink(link); err == nil && parent == "/" {
			break
		}
	}
	fmt.Printf("parent %s\n", parent)
}

func sigecho() {
	c := make(chan os.Signal, 16)
	signal.Notify(c, syscall.SIGUSR1)
	os.Stdout.WriteString("ready\n")
	for range c {
		os.Stdout.WriteString("x\n")
	}
}

// latency measures the round trip: kill(init, USR1) -> the init forwards ->
// sigecho writes a line -> we read it.
func latency(k int, cmdline []string) {
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fail(err)
	}
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	r := bufio.NewReader(out)
	if l, _ := r.ReadString('\n'); l != "ready\n" {
		fail(fmt.Errorf("child said %q", l))
	}
	ds := make([]time.Duration, 0, k)
	for i := 0; i < k; i++ {
		t0 := time.Now()
		syscall.Kill(cmd.Process.Pid, syscall.SIGUSR1)
		if _, err := r.ReadString('\n'); err != nil {
			fail(err)
		}
		ds = append(ds, time.Since(t0))
	}
	rss := vmHWM(cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Nanoseconds()) / 1e3 }
	fmt.Printf("p50_us %.1f p99_us %.1f rss_kib %d\n", q(0.50), q(0.99), rss)
}

func rssWith(cmdline []string) {
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		fail(err)
	}
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "ready\n" {
		fail(fmt.Errorf("child said %q", l))
	}
	pid := cmd.Process.Pid
	fmt.Println(vmHWM(pid))
	// The init's child may be in a group of its own: kill it first. A Go
	// init may fork from any of its threads, and each thread lists its
	// own children (reading the main thread's only left a child behind,
	// holding the benchmark's output pipe open).
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, c := range strings.Fields(string(b)) {
			syscall.Kill(atoi(c), syscall.SIGKILL)
		}
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	cmd.Wait()
}

func vmHWM(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fail(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return atoi(strings.Fields(l)[1])
		}
	}
	return -1
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "testchild:", err)
	os.Exit(1)
}
