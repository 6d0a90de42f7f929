package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/runnel-ci/runnel/artifact"
)

// Options adapts the suite to an implementation.
type Options struct {
	// Corrupt changes the stored bytes of key behind the store's back,
	// keeping the recorded checksum, so that Get must report ErrChecksum.
	// Nil skips the corruption test.
	Corrupt func(t *testing.T, s artifact.Store, key string)
	// Large is the size of the large-object test; 0 means 20 MiB.
	Large int
}

// Run runs the conformance suite. newStore returns an empty store for each
// subtest. At most one Options may be given.
func Run(t *testing.T, newStore func() artifact.Store, options ...Options) {
	var opts Options
	if len(options) > 0 {
		opts = options[0]
	}
	if opts.Large == 0 {
		opts.Large = 20 << 20
	}
	ctx := t.Context()
	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore()
		for _, tc := range []struct {
			name string
			key  string
			data []byte
			size int64
		}{
			{"known size", "a/b/c.txt", []byte("hello artifacts\n"), 16},
			{"unknown size", "a/unknown", []byte("streamed"), -1},
			{"empty", "empty", nil, 0},
			{"unicode key", "résumé/ü 1.bin", []byte{0, 1, 2, 255}, 4},
		} {
			t.Run(tc.name, func(t *testing.T) {
				info, err := s.Put(ctx, tc.key, bytes.NewReader(tc.data), tc.size)
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				want := sum(tc.data)
				if info.Key != tc.key || info.Size != int64(len(tc.data)) || info.SHA256 != want {
					t.Errorf("Put info = %+v, want key %q size %d sha256 %s", info, tc.key, len(tc.data), want)
				}
				got, ginfo := get(t, s, tc.key)
				if !bytes.Equal(got, tc.data) {
					t.Errorf("Get = %q, want %q", got, tc.data)
				}
				if ginfo.SHA256 != want || ginfo.Size != int64(len(tc.data)) {
					t.Errorf("Get info = %+v, want size %d sha256 %s", ginfo, len(tc.data), want)
				}
			})
		}
	})
	t.Run("Overwrite", func(t *testing.T) {
		s := newStore()
		put(t, s, "k", []byte("one"))
		put(t, s, "k", []byte("second"))
		if got, _ := get(t, s, "k"); string(got) != "second" {
			t.Errorf("Get after overwrite = %q, want %q", got, "second")
		}
	})
	t.Run("SizeMismatch", func(t *testing.T) {
		s := newStore()
		if _, err := s.Put(ctx, "short", strings.NewReader("abc"), 5); err == nil {
			t.Fatal("Put with size 5 of 3 bytes: got nil error")
		}
		if _, err := s.Stat(ctx, "short"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Stat after failed Put: got %v, want ErrNotFound", err)
		}
	})
	t.Run("FailedReader", func(t *testing.T) {
		s := newStore()
		put(t, s, "keep", []byte("old"))
		r := io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("disk gone")))
		if _, err := s.Put(ctx, "keep", r, -1); err == nil {
			t.Fatal("Put from failing reader: got nil error")
		}
		if got, _ := get(t, s, "keep"); string(got) != "old" {
			t.Errorf("Get after failed Put = %q, want %q", got, "old")
		}
	})
	t.Run("Stat", func(t *testing.T) {
		s := newStore()
		data := []byte("stat me")
		put(t, s, "dir/file", data)
		info, err := s.Stat(ctx, "dir/file")
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if info.Key != "dir/file" || info.Size != int64(len(data)) || info.SHA256 != sum(data) || info.ModTime.IsZero() {
			t.Errorf("Stat = %+v, want key dir/file size %d sha256 %s and a mod time", info, len(data), sum(data))
		}
	})
	t.Run("List", func(t *testing.T) {
		s := newStore()
		// No key is also a "directory" of another ("run" beside "run/1/a"):
		// S3 allows it but filesystem-backed servers such as versitygw's
		// posix backend do not.
		keys := []string{"run/1/a", "run/1/b/c", "run/10/x", "run/2/a", "runx", "other/z"}
		for _, k := range keys {
			put(t, s, k, []byte(k))
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"", []string{"other/z", "run/1/a", "run/1/b/c", "run/10/x", "run/2/a", "runx"}},
			{"run/1/", []string{"run/1/a", "run/1/b/c"}},
			{"run/1", []string{"run/1/a", "run/1/b/c", "run/10/x"}},
			{"run/", []string{"run/1/a", "run/1/b/c", "run/10/x", "run/2/a"}},
			{"ru", []string{"run/1/a", "run/1/b/c", "run/10/x", "run/2/a", "runx"}},
			{"run/1/b/c", []string{"run/1/b/c"}},
			{"nothing/", nil},
			{"nothing", nil},
		} {
			infos, err := s.List(ctx, tc.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tc.prefix, err)
			}
			var got []string
			for _, i := range infos {
				got = append(got, i.Key)
				if i.SHA256 != sum([]byte(i.Key)) || i.Size != int64(len(i.Key)) {
					t.Errorf("List(%q) entry %+v: want size %d sha256 %s", tc.prefix, i, len(i.Key), sum([]byte(i.Key)))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s := newStore()
		put(t, s, "d/one", []byte("1"))
		put(t, s, "d/two", []byte("2"))
		if err := s.Delete(ctx, "d/one"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Stat(ctx, "d/one"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Stat after Delete: got %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "d/one"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("second Delete: got %v, want ErrNotFound", err)
		}
		infos, err := s.List(ctx, "d/")
		if err != nil || len(infos) != 1 || infos[0].Key != "d/two" {
			t.Errorf("List after Delete = %+v, %v; want only d/two", infos, err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := newStore()
		if _, _, err := s.Get(ctx, "missing/key"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Get: got %v, want ErrNotFound", err)
		}
		if _, err := s.Stat(ctx, "missing/key"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Stat: got %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "missing/key"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Delete: got %v, want ErrNotFound", err)
		}
	})
	t.Run("BadKeys", func(t *testing.T) {
		s := newStore()
		for _, k := range []string{"", "/abs", "a/../b", "..", "a//b", "a/", `a\b`, "a\x00b", "a\nb", "./a", strings.Repeat("k", 1025)} {
			if _, err := s.Put(ctx, k, strings.NewReader("x"), 1); !errors.Is(err, artifact.ErrBadKey) {
				t.Errorf("Put(%q): got %v, want ErrBadKey", k, err)
			}
			if _, _, err := s.Get(ctx, k); !errors.Is(err, artifact.ErrBadKey) {
				t.Errorf("Get(%q): got %v, want ErrBadKey", k, err)
			}
			if _, err := s.Stat(ctx, k); !errors.Is(err, artifact.ErrBadKey) {
				t.Errorf("Stat(%q): got %v, want ErrBadKey", k, err)
			}
			if err := s.Delete(ctx, k); !errors.Is(err, artifact.ErrBadKey) {
				t.Errorf("Delete(%q): got %v, want ErrBadKey", k, err)
			}
		}
		for _, p := range []string{"/abs", "../", "a//", `a\`} {
			if _, err := s.List(ctx, p); !errors.Is(err, artifact.ErrBadKey) {
				t.Errorf("List(%q): got %v, want ErrBadKey", p, err)
			}
		}
		if infos, err := s.List(ctx, ""); err != nil || len(infos) != 0 {
			t.Errorf("List after bad keys = %+v, %v; want empty", infos, err)
		}
	})
	t.Run("Large", func(t *testing.T) {
		s := newStore()
		data := make([]byte, opts.Large+12345)
		rng := rand.NewChaCha8([32]byte{1})
		rng.Read(data)
		for _, size := range []int64{int64(len(data)), -1} {
			info, err := s.Put(ctx, "big/object", bytes.NewReader(data), size)
			if err != nil {
				t.Fatalf("Put size %d: %v", size, err)
			}
			if info.SHA256 != sum(data) || info.Size != int64(len(data)) {
				t.Errorf("Put info = %+v, want size %d sha256 %s", info, len(data), sum(data))
			}
			got, _ := get(t, s, "big/object")
			if !bytes.Equal(got, data) {
				t.Errorf("Get of %d bytes differs (got %d bytes)", len(data), len(got))
			}
		}
	})
	t.Run("Corruption", func(t *testing.T) {
		if opts.Corrupt == nil {
			t.Skip("implementation gave no Corrupt hook")
		}
		s := newStore()
		data := bytes.Repeat([]byte("precious bytes "), 1000)
		put(t, s, "c/victim", data)
		opts.Corrupt(t, s, "c/victim")
		rc, _, err := s.Get(ctx, "c/victim")
		if err != nil {
			if errors.Is(err, artifact.ErrChecksum) {
				return
			}
			t.Fatalf("Get of corrupted object: got %v, want ErrChecksum", err)
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		if !errors.Is(err, artifact.ErrChecksum) {
			t.Errorf("reading corrupted object: got %v, want ErrChecksum", err)
		}
	})
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func put(t *testing.T, s artifact.Store, key string, data []byte) {
	t.Helper()
	if _, err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, s artifact.Store, key string) ([]byte, artifact.Info) {
	t.Helper()
	rc, info, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b, info
}
