// Package slapdtest runs a private OpenLDAP server (Debian's slapd) for
// tests: its own configuration and database in a temporary directory,
// ldap:// and ldaps:// on loopback (or on addresses the test names), a
// certificate from a CA made for the test, and a directory of users,
// groups and a nested group:
//
//	dc=example,dc=com
//	  ou=People:   alice (alice-pw), bob (bob-pw), carol (carol-pw);
//	               employeeType staff (alice, carol) or contractor (bob)
//	  ou=Services: cn=dais (dais-pw), the service account
//	  ou=Groups:   analysts (groupOfNames: alice), staff (groupOfUniqueNames: alice, carol),
//	               readers (posixGroup, memberUid: bob),
//	               data-science (groupOfNames: cn=analysts, nested),
//	               publishers (groupOfNames: bob)
//
// Groups are added through the running server so that the memberof
// overlay fills each user's memberOf.
package slapdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Binary is Debian's slapd.
const Binary = "/usr/sbin/slapd"

// The directory's names and credentials.
const (
	BaseDN      = "dc=example,dc=com"
	PeopleDN    = "ou=People," + BaseDN
	GroupsDN    = "ou=Groups," + BaseDN
	ServiceDN   = "cn=dais,ou=Services," + BaseDN
	ServicePass = "dais-pw"
	rootDN      = "cn=admin," + BaseDN
	rootPass    = "root-pw"
)

// Server is a running private slapd.
type Server struct {
	// Addr and TLSAddr are host:port of ldap:// and ldaps://.
	Addr, TLSAddr string
	// CAFile is the PEM of the CA that signed the server's certificate.
	CAFile string
	// Dir holds the configuration, database, certificates and log.
	Dir string

	t    *testing.T
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs slapd, loaded, on host (127.0.0.1 when empty). Without
// slapd the test is skipped, or fails when CI=true.
func Start(t *testing.T, host string) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("slapd is missing (%v): install slapd and ldap-utils (scripts/test-env.sh)", err)
		}
		t.Skipf("slapd is missing (%v): install slapd and ldap-utils (scripts/test-env.sh)", err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	dir := t.TempDir()
	s := &Server{t: t, Dir: dir, CAFile: filepath.Join(dir, "ca.pem")}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeCerts(t, dir, host)
	s.Addr = net.JoinHostPort(host, freePort(t, host))
	s.TLSAddr = net.JoinHostPort(host, freePort(t, host))
	hashed, err := exec.Command("/usr/sbin/slappasswd", "-s", rootPass).Output()
	if err != nil {
		t.Fatalf("slappasswd: %v", err)
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile %[1]s/slapd.pid
TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/server.pem
TLSCertificateKeyFile %[1]s/server.key
database mdb
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/db
overlay memberof
`, dir, BaseDN, rootDN, strings.TrimSpace(string(hashed)))
	confFile := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.ldif")
	if err := os.WriteFile(seed, []byte(seedLDIF()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/usr/sbin/slapadd", "-f", confFile, "-l", seed).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	s.args = []string{"-f", confFile, "-h", "ldap://" + s.Addr + "/ ldaps://" + s.TLSAddr + "/", "-d", "256"} // 256: stats, read by Operations
	s.Restart()
	t.Cleanup(s.Stop)
	s.addGroups()
	return s
}

// Stop stops slapd (the directory stays on disk for Restart).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts slapd again after Stop, and waits until it answers.
func (s *Server) Restart() {
	t := s.t
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.Dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := ldap.DialURL("ldap://" + s.Addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(filepath.Join(s.Dir, "slapd.log"))
			t.Fatalf("slapd exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd does not answer on %s: %v", s.Addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// LogMark is the length of slapd's log now: Operations(mark) reads the
// connections opened after it.
func (s *Server) LogMark() int64 {
	s.t.Helper()
	fi, err := os.Stat(filepath.Join(s.Dir, "slapd.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	return fi.Size()
}

var (
	logConn   = regexp.MustCompile(`conn=(\d+) fd=\d+ (ACCEPT|closed)`)
	logOp     = regexp.MustCompile(`conn=(\d+) op=(\d+) (BIND|UNBIND|SRCH|CMP|ADD|DEL|MOD|MODRDN|EXT|ABANDON) `)
	logResult = regexp.MustCompile(`conn=(\d+) op=(\d+) (?:SEARCH )?RESULT tag=\d+ err=(\d+)`)
)

// Operations is what the connections opened after mark asked of the
// directory, from slapd's stats log ("-d 256"), once each of them has
// closed and each answer is logged: one entry an operation, by
// connection and operation number, its kind and result code ("BIND
// err=0", "SRCH err=32", "UNBIND"). Tests compare the directory work of
// two logins with it.
func (s *Server) Operations(t testing.TB, mark int64) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(s.Dir, "slapd.log"))
		if err != nil {
			t.Fatal(err)
		}
		ops, done := parseOperations(string(b[mark:]))
		if done {
			return ops
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd's log after the mark has a connection not closed or an operation without a result:\n%s", b[mark:])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// parseOperations reads slapd's stats lines (several threads write them,
// so a connection's ACCEPT may follow its first operation): the
// operations in order, and whether every connection has closed and every
// operation that is answered has its result.
func parseOperations(log string) (list []string, done bool) {
	type op struct {
		conn, n int
		kind    string
		result  string
	}
	ops := map[[2]int]*op{}
	results := map[[2]int]string{}
	key := func(conn, n string) [2]int {
		c, _ := strconv.Atoi(conn)
		i, _ := strconv.Atoi(n)
		return [2]int{c, i}
	}
	// Results and closings of operations begun before the mark are
	// ignored: a connection counts from its ACCEPT or a request.
	open := map[string]bool{}
	closed := map[string]bool{}
	for _, line := range strings.Split(log, "\n") {
		if m := logConn.FindStringSubmatch(line); m != nil {
			if m[2] == "closed" {
				closed[m[1]] = true
			} else {
				open[m[1]] = true
			}
		} else if m := logOp.FindStringSubmatch(line); m != nil {
			k := key(m[1], m[2])
			if ops[k] == nil {
				ops[k] = &op{conn: k[0], n: k[1], kind: m[3]}
				open[m[1]] = true
			}
		} else if m := logResult.FindStringSubmatch(line); m != nil {
			results[key(m[1], m[2])] = " err=" + m[3]
		}
	}
	done = true
	for c := range open {
		done = done && closed[c]
	}
	all := make([]*op, 0, len(ops))
	for k, o := range ops {
		o.result = results[k]
		all = append(all, o)
		if o.result == "" && o.kind != "UNBIND" && o.kind != "ABANDON" {
			done = false
		}
	}
	sort.Slice(all, func(i, j int) bool {
		return all[i].conn < all[j].conn || all[i].conn == all[j].conn && all[i].n < all[j].n
	})
	for _, o := range all {
		list = append(list, o.kind+o.result)
	}
	return list, done
}

// Admin returns a connection bound as the directory's root, to change it.
func (s *Server) Admin() *ldap.Conn {
	s.t.Helper()
	c, err := ldap.DialURL("ldap://" + s.Addr)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := c.Bind(rootDN, rootPass); err != nil {
		s.t.Fatal(err)
	}
	return c
}

// UserDN is the DN of a user of ou=People.
func UserDN(uid string) string { return "uid=" + uid + "," + PeopleDN }

// GroupDN is the DN of a group of ou=Groups.
func GroupDN(cn string) string { return "cn=" + cn + "," + GroupsDN }

func (s *Server) addGroups() {
	c := s.Admin()
	defer c.Close()
	add := func(dn string, attrs map[string][]string) {
		r := ldap.NewAddRequest(dn, nil)
		for k, v := range attrs {
			r.Attribute(k, v)
		}
		if err := c.Add(r); err != nil {
			s.t.Fatalf("add %s: %v", dn, err)
		}
	}
	add(GroupDN("analysts"), map[string][]string{"objectClass": {"groupOfNames"}, "cn": {"analysts"}, "member": {UserDN("alice")}})
	add(GroupDN("staff"), map[string][]string{"objectClass": {"groupOfUniqueNames"}, "cn": {"staff"}, "uniqueMember": {UserDN("alice"), UserDN("carol")}})
	add(GroupDN("readers"), map[string][]string{"objectClass": {"posixGroup"}, "cn": {"readers"}, "gidNumber": {"5001"}, "memberUid": {"bob"}})
	add(GroupDN("data-science"), map[string][]string{"objectClass": {"groupOfNames"}, "cn": {"data-science"}, "member": {GroupDN("analysts")}})
	add(GroupDN("publishers"), map[string][]string{"objectClass": {"groupOfNames"}, "cn": {"publishers"}, "member": {UserDN("bob")}})
}

func seedLDIF() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n", BaseDN)
	for _, ou := range []string{"People", "Groups", "Services"} {
		fmt.Fprintf(&b, "dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n", ou, BaseDN, ou)
	}
	fmt.Fprintf(&b, "dn: %s\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: dais\nsn: dais\nuserPassword: %s\n\n", ServiceDN, ServicePass)
	for _, u := range []struct{ uid, first, last, kind string }{{"alice", "Alice", "Analyst", "staff"}, {"bob", "Bob", "Builder", "contractor"}, {"carol", "Carol", "Checker", "staff"}} {
		fmt.Fprintf(&b, "dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s %s\ngivenName: %s\nsn: %s\nmail: %s@example.com\nemployeeType: %s\nuserPassword: %s-pw\n\n",
			UserDN(u.uid), u.uid, u.first, u.last, u.first, u.last, u.uid, u.kind, u.uid)
	}
	return b.String()
}

func freePort(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// writeCerts makes ca.pem, server.pem and server.key in dir: a CA and a
// server certificate for host, 127.0.0.1 and localhost.
func writeCerts(t *testing.T, dir, host string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "slapdtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	if ip := net.ParseIP(host); ip != nil {
		srv.IPAddresses = append(srv.IPAddresses, ip)
	} else {
		srv.DNSNames = append(srv.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, srv, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	for name, block := range map[string]*pem.Block{
		"ca.pem":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem": {Type: "CERTIFICATE", Bytes: der},
		"server.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		mode := os.FileMode(0o600)
		if name == "ca.pem" {
			mode = 0o644 // public, and read by dais in a container
		}
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), mode); err != nil {
			t.Fatal(err)
		}
	}
}
