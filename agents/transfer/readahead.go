package transfer

import (
	"io"
	"sync"
)

// readAhead reads rc in a goroutine into a few buffers ahead of the
// consumer, so that a download's network reads overlap with the work done
// on what was read (its SHA-256, the tar stream into a container). It
// holds at most n buffers of size bytes.
type readAhead struct {
	rc   io.ReadCloser
	full chan chunk
	free chan []byte
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	cur []byte // unread part of buf
	buf []byte
	err error
}

type chunk struct {
	b   []byte
	err error
}

func newReadAhead(rc io.ReadCloser, n, size int) *readAhead {
	a := &readAhead{rc: rc, full: make(chan chunk, n), free: make(chan []byte, n), done: make(chan struct{})}
	for range n {
		a.free <- make([]byte, size)
	}
	a.wg.Add(1)
	go a.fill()
	return a
}

func (a *readAhead) fill() {
	defer a.wg.Done()
	for {
		var b []byte
		select {
		case b = <-a.free:
		case <-a.done:
			return
		}
		k, err := io.ReadFull(a.rc, b)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case a.full <- chunk{b[:k], err}:
		case <-a.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (a *readAhead) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)] // never blocks: n buffers, n slots
			a.buf = nil
		}
		c := <-a.full
		a.cur, a.buf, a.err = c.b, c.b, c.err
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the reading goroutine, waits for it and closes rc.
func (a *readAhead) Close() error {
	var err error
	a.once.Do(func() {
		close(a.done)
		err = a.rc.Close() // ends a read in progress
		a.wg.Wait()
	})
	return err
}
