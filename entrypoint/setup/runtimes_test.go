package setup

import "testing"

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		less bool
	}{
		{"3.0.2", "3.1.0", true}, {"3.1.0", "3.1.0", false}, {"3.1", "3.1.0", false},
		{"3.10.1", "3.5", false}, {"3.4.10", "3.5", true}, {"4.3.1", "3.1.0", false},
	}
	for _, tt := range tests {
		if got := versionLess(tt.a, tt.b); got != tt.less {
			t.Errorf("versionLess(%s, %s) = %v", tt.a, tt.b, got)
		}
	}
}
