package logs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

const pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"

// leaks reports which of the given forms of secret survive in out.
func leaks(out string, forms ...string) []string {
	var l []string
	for _, f := range forms {
		if strings.Contains(out, f) {
			l = append(l, f)
		}
	}
	return l
}

// TestMaskForms: every form of a secret a step can print is masked,
// written one byte at a time.
func TestMaskForms(t *testing.T) {
	const secret = `s3cr3t/v@lue+"x"&<y>`
	jsonQ, _ := json.Marshal(secret)
	tests := []struct {
		name   string
		secret string
		in     string
		hidden []string // must not survive
	}{
		{"plain", secret, "token=" + secret + "\n", []string{secret}},
		{"pem whole", pem, "key:\n" + pem + "done\n", []string{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"}},
		{"pem one line", pem, "line: BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n", []string{"BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"}},
		{"pem joined", pem, strings.ReplaceAll(pem, "\n", "") + "\n", []string{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"}},
		{"pem crlf", pem, strings.ReplaceAll(pem, "\n", "\r\n"), []string{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"}},
		{"url", secret, "u=" + url.QueryEscape(secret) + "\n", []string{url.QueryEscape(secret)}},
		{"path escape", secret, "p=" + url.PathEscape(secret) + "\n", []string{url.PathEscape(secret)}},
		{"json", secret, `{"t":` + string(jsonQ) + "}\n", []string{string(jsonQ[1 : len(jsonQ)-1])}},
	}
	for off := 0; off < 3; off++ {
		// base64 of the secret inside a longer stream, at each offset.
		stream := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("P", off) + secret + "trailer"))
		inner := base64.StdEncoding.EncodeToString([]byte(secret[(3-off)%3:]))
		inner = inner[:len(inner)/4*4-4]
		tests = append(tests, struct {
			name   string
			secret string
			in     string
			hidden []string
		}{"base64 offset " + string(rune('0'+off)), secret, stream + "\n", []string{inner}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			w := Chain(&b, MaskSet(NewSet(tt.secret)))
			for i := 0; i < len(tt.in); i++ {
				w.Write([]byte{tt.in[i]})
			}
			w.Close()
			if l := leaks(b.String(), tt.hidden...); len(l) > 0 {
				t.Errorf("%q survive in %q", l, b.String())
			}
			if !strings.Contains(b.String(), Redacted) {
				t.Errorf("nothing masked in %q", b.String())
			}
		})
	}
}

func TestAddMask(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		chunks []int
		want   string
	}{
		{"registers", "a\n::add-mask::derived-123\nuse derived-123 now\n", nil, "a\n::add-mask::***\nuse *** now\n"},
		{"byte by byte", "::add-mask::derived-123\r\nx derived-123\n", ones(40), "::add-mask::***\nx ***\n"},
		{"not at line start", "say ::add-mask::derived-123\nderived-123\n", []int{5, 3}, "say ::add-mask::derived-123\nderived-123\n"},
		{"prefix false start", "::add-m\n::x\n", []int{3}, "::add-m\n::x\n"},
		{"too short", "::add-mask::abc\nabc\n", nil, "::add-mask::***\n[runnel: ::add-mask:: refused a value of 3 bytes; values must have at least 6]\nabc\n"},
		{"unterminated at close", "::add-mask::derived-123", []int{4}, "::add-mask::***"},
		{"base64 of registered", "::add-mask::derived-123\n" + base64.StdEncoding.EncodeToString([]byte("derived-123")) + "\n", nil, "::add-mask::***\n***\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			set := NewSet()
			writeChunks(t, Chain(&b, AddMask(set), MaskSet(set)), tt.in, tt.chunks...)
			if got := b.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

// FuzzMaskChain checks that for any input, any chunking and any secret of
// at least MinSecret bytes, no form of the secret Variants knows survives
// the stage's chain, and that registered values are masked after their
// registration line.
func FuzzMaskChain(f *testing.F) {
	f.Add("pw=hunter22 and aHVudGVyMjI=", "hunter22", uint8(3), uint8(1))
	f.Add(pem+"x", pem, uint8(1), uint8(7))
	f.Add("::add-mask::derived-1\nderived-1\n", "zzzzzzzz", uint8(2), uint8(5))
	f.Fuzz(func(t *testing.T, in, secret string, step, step2 uint8) {
		if len(secret) < MinSecret || strings.Contains(secret, "*") {
			return
		}
		set := NewSet(secret)
		var b bytes.Buffer
		w := Chain(&b, AddMask(set), MaskSet(set))
		sizes := []int{int(step%16) + 1, int(step2%16) + 1}
		for i, rest := 0, in; len(rest) > 0; i++ {
			k := min(sizes[i%2], len(rest))
			w.Write([]byte(rest[:k]))
			rest = rest[k:]
		}
		w.Close()
		out := b.String()
		for _, v := range Variants(secret) {
			if len(v) >= MinSecret && !strings.Contains(v, "*") && strings.Contains(out, v) {
				t.Fatalf("form %q of secret %q survives in %q (input %q)", v, secret, out, in)
			}
		}
	})
}
