package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The spec reaches sandbox-exec in a small binary form holding only what
// sandbox-exec applies, not as JSON: decoding JSON into specs.Spec costs
// about 0.6 ms in a fresh process (reflection and page faults), a tenth of
// a whole sandbox start. The JSON spec stays the description (`dais sandbox
// spec`); this is its wire form between dais and sandbox-exec, which are
// built together.
//
// Layout: wireMagic, then length-prefixed strings and uvarints in the order
// of encodeSpec, the annotations (the Landlock settings) last, sorted by
// key. What sandbox-exec does not read (capabilities: it drops every one;
// namespaces: made by clone(2) in the parent) is not sent.
const wireMagic = "dais-sandbox-spec/2\n"

// wireLimit bounds every count and string length in a wire spec.
const wireLimit = 1 << 20

// maxSpec bounds a spec passed in a memfd; maxWarmSpec one sent to a
// pre-started sandbox-exec in a single socket message (larger specs start a
// sandbox-exec of their own).
const (
	maxSpec     = 8 << 20
	maxWarmSpec = 128 << 10
)

func encodeSpec(s *specs.Spec) ([]byte, error) {
	if s.Root != nil && s.Root.Path != "" && s.Root.Path != "/" {
		return nil, fmt.Errorf("root %q: only the host's / is supported", s.Root.Path)
	}
	p := s.Process
	var w wireWriter
	w.b = append(w.b, wireMagic...)
	w.strs(p.Args)
	w.strs(p.Env)
	w.str(p.Cwd)
	w.num(uint64(p.User.UID))
	w.num(uint64(p.User.GID))
	w.num(uint64(len(p.User.AdditionalGids)))
	for _, g := range p.User.AdditionalGids {
		w.num(uint64(g))
	}
	w.num(uint64(len(p.Rlimits)))
	for _, r := range p.Rlimits {
		w.str(r.Type)
		w.num(r.Soft)
		w.num(r.Hard)
	}
	w.flag(p.NoNewPrivileges)
	w.num(uint64(len(s.Mounts)))
	for _, m := range s.Mounts {
		w.str(m.Destination)
		w.str(m.Type)
		w.str(m.Source)
		w.strs(m.Options)
	}
	keys := slices.Sorted(maps.Keys(s.Annotations))
	w.num(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.str(s.Annotations[k])
	}
	return w.b, nil
}

func decodeSpec(b []byte) (*specs.Spec, error) {
	if len(b) < len(wireMagic) || string(b[:len(wireMagic)]) != wireMagic {
		return nil, errors.New("not a dais sandbox spec of this version (dais and its sandbox-exec helper must come from the same build)")
	}
	r := wireReader{b: b[len(wireMagic):]}
	p := &specs.Process{User: specs.User{}}
	p.Args = r.strs()
	p.Env = r.strs()
	p.Cwd = r.str()
	p.User.UID = uint32(r.num())
	p.User.GID = uint32(r.num())
	if n := r.count(); n > 0 {
		p.User.AdditionalGids = make([]uint32, n)
		for i := range p.User.AdditionalGids {
			p.User.AdditionalGids[i] = uint32(r.num())
		}
	}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: r.str(), Soft: r.num(), Hard: r.num()})
	}
	p.NoNewPrivileges = r.flag()
	s := &specs.Spec{Root: &specs.Root{Path: "/"}, Process: p}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: r.str(), Type: r.str(), Source: r.str(), Options: r.strs()})
	}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		k := r.str()
		s.Annotations[k] = r.str()
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes left over", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode: %w", r.err)
	}
	return s, nil
}

type wireWriter struct{ b []byte }

func (w *wireWriter) num(n uint64) { w.b = binary.AppendUvarint(w.b, n) }
func (w *wireWriter) str(s string) { w.num(uint64(len(s))); w.b = append(w.b, s...) }
func (w *wireWriter) flag(v bool) {
	if v {
		w.num(1)
	} else {
		w.num(0)
	}
}
func (w *wireWriter) strs(l []string) {
	w.num(uint64(len(l)))
	for _, s := range l {
		w.str(s)
	}
}

// wireReader reads what wireWriter wrote; after the first error every read
// returns a zero value and err keeps that error.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) num() uint64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = errors.New("truncated number")
		return 0
	}
	r.b = r.b[k:]
	return n
}

// count is a number used as a length: bounded, so that a bad spec cannot
// make sandbox-exec allocate without limit.
func (r *wireReader) count() int {
	n := r.num()
	if n > wireLimit || n > uint64(len(r.b)) {
		if r.err == nil {
			r.err = fmt.Errorf("count %d out of range", n)
		}
		return 0
	}
	return int(n)
}

func (r *wireReader) str() string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *wireReader) flag() bool {
	switch r.num() {
	case 0:
		return false
	case 1:
		return true
	}
	if r.err == nil {
		r.err = errors.New("bad flag")
	}
	return false
}

func (r *wireReader) strs() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = r.str()
	}
	return l
}
