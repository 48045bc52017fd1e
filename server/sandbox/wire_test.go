package sandbox

import (
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func wireSample() *specs.Spec {
	return &specs.Spec{
		Root: &specs.Root{Path: "/"},
		Process: &specs.Process{
			Args: []string{"/opt/R/4.2.2/bin/R", "--no-save", "-e", "shiny::runApp(port = 41234)", ""},
			Env:  []string{"HOME=/data/apps/1/work", "CONNECT_CONTENT_GUID=0f5d", "EMPTY="},
			Cwd:  "/data/apps/1/work",
			User: specs.User{UID: 999, GID: 999, AdditionalGids: []uint32{999, 4242}},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Soft: 4096, Hard: 8192},
				{Type: "RLIMIT_AS", Soft: ^uint64(0), Hard: ^uint64(0)},
			},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "mode=0755", "size=64k"}},
			{Destination: "/data/apps/1/code", Type: "bind", Source: "/data/apps/1/code", Options: []string{"rbind", "ro", optMkdir}},
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/usr", Type: mountLandlock, Source: "/usr", Options: []string{accessRead, accessExecute}},
		},
		Annotations: map[string]string{AnnotationMode: string(ModeLandlock), AnnotationBindTCP: "41234"},
	}
}

// The wire form carries everything sandbox-exec applies, unchanged.
func TestWireRoundTrip(t *testing.T) {
	for _, s := range []*specs.Spec{wireSample(), {Root: &specs.Root{Path: "/"}, Process: &specs.Process{Args: []string{"true"}}}} {
		b, err := encodeSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeSpec(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, s)
		}
	}
}

// Truncated, foreign or trailing-garbage input is an error naming the cause.
func TestWireRefusals(t *testing.T) {
	good, err := encodeSpec(wireSample())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"JSON from another build", []byte(`{"ociVersion":"1.2.0"}`), "same build"},
		{"empty", nil, "same build"},
		{"truncated", good[:len(good)-3], "decode"},
		{"trailing bytes", append(append([]byte{}, good...), 1, 2), "left over"},
		{"huge count", append([]byte(wireMagic), 0xff, 0xff, 0xff, 0xff, 0x0f), "out of range"},
	} {
		if _, err := decodeSpec(tt.b); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := encodeSpec(&specs.Spec{Root: &specs.Root{Path: "/srv/rootfs"}, Process: &specs.Process{Args: []string{"x"}}}); err == nil {
		t.Error("a root other than / was encoded")
	}
}

// decodeSpec never panics, and what it accepts encodes back to the same bytes.
func FuzzDecodeSpec(f *testing.F) {
	good, _ := encodeSpec(wireSample())
	f.Add(good)
	f.Add([]byte(wireMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSpec(b)
		if err != nil {
			return
		}
		again, err := encodeSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := decodeSpec(again)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-encoded spec differs: %v", err)
		}
	})
}
