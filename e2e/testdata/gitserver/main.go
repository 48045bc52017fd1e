// gitserver serves the git repositories under -root over smart HTTP (git
// http-backend, read only) behind HTTP basic authentication: the git host
// of the git-backed content tests (e2e/git_test.go), run next to dais in
// its network namespace so that dais clones over loopback. Each request is
// logged as "METHOD PATH STATUS user=NAME" on standard output; credentials
// are never logged.
package main

import (
	"crypto/subtle"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/cgi"
	"os"
)

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "address to listen on")
	root := flag.String("root", "/repos", "folder of bare repositories")
	user := flag.String("user", "", "basic auth user")
	password := flag.String("password", "", "basic auth password")
	backend := flag.String("backend", "/usr/lib/git-core/git-http-backend", "git http-backend")
	flag.Parse()
	cgiHandler := &cgi.Handler{Path: *backend, Env: []string{"GIT_PROJECT_ROOT=" + *root, "GIT_HTTP_EXPORT_ALL=1"}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: 200}
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(*user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(*password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			sw.WriteHeader(http.StatusUnauthorized)
		} else {
			cgiHandler.ServeHTTP(sw, r)
		}
		fmt.Printf("%s %s %d user=%s\n", r.Method, r.URL.Path, sw.status, u)
	})
	srv := &http.Server{Addr: *listen, Handler: h}
	fmt.Fprintln(os.Stderr, "gitserver listening on", *listen)
	log.Fatal(srv.ListenAndServe())
}
