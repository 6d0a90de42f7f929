package logs

import (
	"errors"
	"io"
)

// Filter wraps dst in a writer stage. The stage's Close flushes what it
// buffered into dst; it never closes dst.
type Filter func(dst io.Writer) io.WriteCloser

// Chain returns a writer that passes data through filters in order (the
// first filter sees the data first) and then into dst. Close flushes every
// stage, first to last; it does not close dst.
func Chain(dst io.Writer, filters ...Filter) io.WriteCloser {
	stages := make([]io.WriteCloser, len(filters))
	w := dst
	for i := len(filters) - 1; i >= 0; i-- {
		stages[i] = filters[i](w)
		w = stages[i]
	}
	return &chain{head: w, stages: stages}
}

type chain struct {
	head   io.Writer
	stages []io.WriteCloser
}

func (c *chain) Write(p []byte) (int, error) { return c.head.Write(p) }

func (c *chain) Close() error {
	var errs []error
	for _, s := range c.stages {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
