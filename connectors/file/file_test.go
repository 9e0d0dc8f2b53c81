package file

import "testing"

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{"job": "job", "a/b": "a_b", `a\b`: "a_b", ".": "_", "..": "__", "a.b": "a.b", "x\x00": "x_"} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
