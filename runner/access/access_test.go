package access

import "testing"

func TestAllows(t *testing.T) {
	for _, c := range []struct {
		role Role
		p    Permission
		want bool
	}{
		{Admin, View, true}, {Admin, Operate, true}, {Admin, Administer, true},
		{Operator, View, true}, {Operator, Operate, true}, {Operator, Administer, false},
		{Read, View, true}, {Read, Operate, false}, {Read, Administer, false},
		{"", View, false}, {"root", View, false}, {"ADMIN", Administer, false},
	} {
		if got := Allows(c.role, c.p); got != c.want {
			t.Errorf("Allows(%q, %v) = %v, want %v", c.role, c.p, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"admin", "operator", "read"} {
		if r, err := Parse(s); err != nil || string(r) != s {
			t.Errorf("Parse(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "Admin", "readonly", "write"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q): no error", s)
		}
	}
}
