package transfer

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

type closeCount struct {
	io.Reader
	closed int
}

func (c *closeCount) Close() error { c.closed++; return nil }

func TestReadAhead(t *testing.T) {
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	src := &closeCount{Reader: bytes.NewReader(data)}
	a := newReadAhead(src, 3, 1<<20)
	got, err := io.ReadAll(a)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll = %d bytes, %v; want the %d bytes", len(got), err, len(data))
	}
	if err := a.Close(); err != nil || src.closed != 1 {
		t.Fatalf("Close = %v, closed %d times", err, src.closed)
	}
	a.Close() // idempotent

	boom := errors.New("connection reset")
	a = newReadAhead(&closeCount{Reader: &errAfter{r: bytes.NewReader(data[:100]), err: boom}}, 2, 64)
	if _, err := io.ReadAll(a); !errors.Is(err, boom) {
		t.Fatalf("read error = %v, want the source's", err)
	}
	a.Close()

	// Closing before the end stops the goroutine (Close waits for it).
	a = newReadAhead(&closeCount{Reader: bytes.NewReader(data)}, 2, 1024)
	buf := make([]byte, 10)
	if _, err := a.Read(buf); err != nil {
		t.Fatal(err)
	}
	a.Close()
}
