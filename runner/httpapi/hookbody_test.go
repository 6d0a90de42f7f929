package httpapi

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/sync/semaphore"

	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// TestHookBody: a body is read only into bytes reserved from the budget,
// and the reservation is returned by release.
func TestHookBody(t *testing.T) {
	body := strings.Repeat("x", 100<<10)
	tests := []struct {
		name   string
		budget int64
		length int64 // Content-Length, -1 unknown
		limit  int64
		want   error
	}{
		{"known length", 200 << 10, int64(len(body)), 1 << 20, nil},
		{"unknown length grows", 200 << 10, -1, 1 << 20, nil},
		{"announced over the limit", 1 << 20, int64(len(body)), 50 << 10, scm.ErrTooLarge},
		{"over the limit, unknown length", 1 << 20, -1, 50 << 10, scm.ErrTooLarge},
		{"budget too small", 64 << 10, int64(len(body)), 1 << 20, errBusy},
		{"budget too small, unknown length", 80 << 10, -1, 1 << 20, errBusy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sem := semaphore.NewWeighted(tc.budget)
			// One byte per Read, as a slow client sends it.
			b := newHookBody(sem, iotest.OneByteReader(strings.NewReader(body)), tc.length)
			err := b.all(tc.limit)
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("all: got %v, want %v", err, tc.want)
			}
			if err == nil && string(b.bytes()) != body {
				t.Errorf("got %d bytes, want the body's %d", len(b.bytes()), len(body))
			}
			if b.reserved > tc.budget || int64(cap(b.buf)) > b.reserved {
				t.Errorf("holds %d bytes of buffer with %d reserved of %d", cap(b.buf), b.reserved, tc.budget)
			}
			b.release()
			if !sem.TryAcquire(tc.budget) {
				t.Errorf("budget not whole after release")
			}
		})
	}
}

// TestHookBodyPrefix: a prefix is read without the rest, and reading
// can go on from it.
func TestHookBodyPrefix(t *testing.T) {
	sem := semaphore.NewWeighted(1 << 20)
	b := newHookBody(sem, strings.NewReader("0123456789"), -1)
	if err := b.prefix(4); err != nil || string(b.bytes()) != "0123" {
		t.Fatalf("prefix: got %q %v", b.bytes(), err)
	}
	if err := b.all(10); err != nil || string(b.bytes()) != "0123456789" {
		t.Fatalf("all after prefix: got %q %v", b.bytes(), err)
	}
	broken := newHookBody(sem, io.MultiReader(strings.NewReader("01"), iotest.ErrReader(io.ErrUnexpectedEOF)), -1)
	if err := broken.all(10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("broken body: got %v, want ErrUnexpectedEOF", err)
	}
}

func TestAcceptsHook(t *testing.T) {
	tests := []struct {
		forge, secret string
		generic       bool
		source        string
		want          bool
	}{
		{store.ForgeGitHub, "s", false, scm.ForgeGitHub, true},
		{store.ForgeGitHub, "", false, scm.ForgeGitHub, false}, // no secret: fail closed
		{store.ForgeGitHub, "s", false, scm.ForgeGitea, false}, // another forge's hook
		{store.ForgeGitHub, "s", false, scm.ForgeGeneric, false},
		{store.ForgeGitHub, "s", true, scm.ForgeGeneric, true}, // explicitly enabled
		{store.ForgeGitLab, "s", false, scm.ForgeGitLab, true},
		{store.ForgeGit, "", false, scm.ForgeGeneric, true},
		{store.ForgeGeneric, "", false, scm.ForgeGeneric, true},
		{store.ForgeGit, "s", false, scm.ForgeGitHub, false},
	}
	for _, tc := range tests {
		repo := &store.Repo{Forge: tc.forge, WebhookSecret: tc.secret, GenericHook: tc.generic}
		if got := acceptsHook(repo, tc.source); got != tc.want {
			t.Errorf("acceptsHook(%s repo, secret %q, generic %v, %s hook): got %v, want %v",
				tc.forge, tc.secret, tc.generic, tc.source, got, tc.want)
		}
	}
}

// FuzzRepoFromPayload: the scanner reads unverified bodies; it must not
// panic, and a name it finds is a JSON string of the body.
func FuzzRepoFromPayload(f *testing.F) {
	f.Add(`{"ref":"x","repository":{"full_name":"o/r"}}`)
	f.Add(`{"project":{"path_with_namespace":"g/p"}}`)
	f.Add(`{"a":"}","repository":{"x":{"full_name":"no"},"full_name":"o/\u0072"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		name := repoFromPayload([]byte(body))
		if name != "" && !strings.Contains(body, "full_name") && !strings.Contains(body, "path_with_namespace") {
			t.Fatalf("found %q in %q, which names no repository", name, body)
		}
	})
}
