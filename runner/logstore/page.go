package logstore

import (
	"errors"
	"fmt"

	"github.com/runnel-ci/runnel/runner/logview"
)

// Page reads the page q asks for of k's log. ended says the step
// attempt can write no more (runner.StepEnded); the page is final when,
// besides, this process is not writing the log (Live), so a log whose
// writer went away still ends. A log not written yet is an empty page.
func (s *Store) Page(k Key, ended bool, q logview.Query) (logview.Page, error) {
	final := ended && !s.Live(k)
	f, err := s.Open(k)
	if errors.Is(err, ErrNotFound) {
		return logview.Page{Final: final}, nil
	}
	if err != nil {
		return logview.Page{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return logview.Page{}, fmt.Errorf("stat log %s: %w", k, err)
	}
	return logview.ReadPage(f, fi.Size(), final, q)
}
