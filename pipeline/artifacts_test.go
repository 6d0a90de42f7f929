package pipeline

import "testing"

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "out/", want: "out"},
		{in: "./out/bin.txt", want: "out/bin.txt"},
		{in: "foo..bar", want: "foo..bar"},
		{in: ".hidden", want: ".hidden"},
		{in: "..hidden/x", want: "..hidden/x"},
		{in: "dir with space/ünï", want: "dir with space/ünï"},
		{in: "**/*.log", want: "**/*.log"},
		{in: "..", bad: true},
		{in: "../x", bad: true},
		{in: "a/../../x", bad: true},
		{in: "a/..", bad: true},
		{in: "/etc/passwd", bad: true},
		{in: "~/x", bad: true},
		{in: `..\x`, bad: true},
		{in: "a//b", bad: true},
		{in: "a/./b", bad: true},
		{in: ".", bad: true},
		{in: "./", bad: true},
		{in: "x\x00y", bad: true},
		{in: "x\ny", bad: true},
		{in: "x\u0085y", bad: true},
		{in: "\xff", bad: true},
		{in: "bad[", bad: true},
	}
	for _, tt := range tests {
		got, problem := cleanPath(tt.in, true)
		if tt.bad {
			if problem == "" {
				t.Errorf("cleanPath(%q) = %q, want it refused", tt.in, got)
			}
			continue
		}
		if problem != "" || got != tt.want {
			t.Errorf("cleanPath(%q) = %q, %q; want %q", tt.in, got, problem, tt.want)
		}
	}
}
