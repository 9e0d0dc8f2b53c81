package sqlfront

import "testing"

func TestLikeMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"ord%", "orders", true}, {"ord%", "ORDERS_x", true}, {"ord%", "xorders", false},
		{"%s", "orders", true}, {"o_ders", "orders", true}, {"o_ders", "oders", false},
		{"a\\%b", "a%b", true}, {"a\\%b", "axb", false}, {"", "", true}, {"%", "", true},
		{"ü%", "Über", true}, {"a_", "a", false},
	} {
		if got := likeMatch(c.pattern, c.s); got != c.want {
			t.Errorf("%q LIKE %q = %v", c.s, c.pattern, got)
		}
	}
}
