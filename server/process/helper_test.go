package process

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The test binary doubles as the content process: with DAIS_TEST_APP set
// it serves on DAIS_TEST_PORT in the mode named by DAIS_TEST_APP.
func TestMain(m *testing.M) {
	if mode := os.Getenv("DAIS_TEST_APP"); mode != "" {
		os.Exit(helperApp(mode, os.Getenv("DAIS_TEST_PORT")))
	}
	os.Exit(m.Run())
}

func helperApp(mode, port string) int {
	fmt.Println("helper app starting, mode", mode, "pid", os.Getpid())
	switch mode {
	case "crash":
		fmt.Println("helper app crashing")
		return 3
	case "hang":
		time.Sleep(time.Hour)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	case "mute":
		// Accepts connections and never reads or answers: a hung app.
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		var held []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				return 1
			}
			held = append(held, c)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"pid": os.Getpid(), "path": r.URL.Path, "rawpath": r.URL.RawPath, "query": r.URL.RawQuery, "host": r.Host,
			"xff": r.Header.Get("X-Forwarded-For"), "xfh": r.Header.Get("X-Forwarded-Host"),
			"xfp": r.Header.Get("X-Forwarded-Proto"), "base": r.Header.Get("RStudio-Connect-App-Base-URL"),
			"rsc": r.Header.Get("X-RSC-Request"),
		})
	})
	mux.HandleFunc("/page.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"same-for-all"`)
		fmt.Fprintf(w, "<!DOCTYPE html>\n<html>\n<HEAD lang=\"en\">\n<title>pid %d</title>\n</HEAD>\n<body>pid %d</body>\n</html>\n", os.Getpid(), os.Getpid())
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slept %d pid %d", ms, os.Getpid())
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		// Starts its answer, then goes silent for good.
		fmt.Fprint(w, "first\n")
		w.(http.Flusher).Flush()
		time.Sleep(time.Hour)
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d bytes, %v", len(b), err)
	})
	mux.HandleFunc("/drip", func(w http.ResponseWriter, r *http.Request) {
		// A byte every 300 ms for 2.4 s: never idle for a second.
		for range 8 {
			fmt.Fprint(w, ".")
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
		}
		fmt.Fprint(w, "done")
	})
	mux.HandleFunc("/ws-silent", func(w http.ResponseWriter, r *http.Request) {
		// A WebSocket that never sends (and ignores what it gets).
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/ws-push", func(w http.ResponseWriter, r *http.Request) {
		// A dashboard: pushes an update every 200 ms, needs nothing back.
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(context.Background())
		for i := 0; ; i++ {
			if c.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(i))) != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		os.Exit(4)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, append([]byte("echo: "), b...)); err != nil {
				return
			}
		}
	})
	if err := http.ListenAndServe("127.0.0.1:"+port, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperLauncher starts this test binary as a content process in mode;
// launches counts the starts.
func helperLauncher(t *testing.T, mode string, launches *int64Counter) Launcher {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return CommandLauncher(func(port int) (*exec.Cmd, error) {
		if launches != nil {
			launches.add()
		}
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "DAIS_TEST_APP="+mode, "DAIS_TEST_PORT="+strconv.Itoa(port))
		return cmd, nil
	})
}
