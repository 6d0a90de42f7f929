package deliveryq

import (
	"slices"
	"time"
)

func (q *Queue) sweeper() {
	defer q.wg.Done()
	t := time.NewTicker(q.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-q.kick:
		case <-t.C:
		}
		q.sweep()
	}
}

// sweep holds the store's due deliveries that are not held yet, as many
// as there is room for, taking the repositories in turn from where the
// last sweep stopped, so that one repository's backlog cannot keep
// another's deliveries in the store.
func (q *Queue) sweep() {
	now := time.Now()
	repos, err := q.cfg.Store.DueDeliveryRepos(q.base, now)
	if err != nil {
		if q.base.Err() == nil {
			q.log.Error("sweep: list repositories with due deliveries", "err", err)
		}
		return
	}
	q.mu.Lock()
	turn := q.turn
	q.mu.Unlock()
	start, _ := slices.BinarySearch(repos, turn+1)
	left := false
	for _, repo := range slices.Concat(repos[start:], repos[:start]) {
		select {
		case <-q.stop:
			return
		default:
		}
		more, err := q.sweepRepo(repo, now)
		if err != nil {
			if q.base.Err() == nil {
				q.log.Error("sweep: list due deliveries", "repo_id", repo, "err", err)
			}
			return
		}
		left = left || more
		q.mu.Lock()
		q.turn = repo
		q.mu.Unlock()
	}
	q.mu.Lock()
	q.spilled = left
	q.mu.Unlock()
}

// sweepRepo holds repo's due deliveries while there is room; more is true
// when it stopped for lack of room.
func (q *Queue) sweepRepo(repo int64, now time.Time) (more bool, err error) {
	var after int64
	for {
		page, err := q.cfg.Store.DueDeliveries(q.base, repo, now, after, 100)
		if err != nil || len(page) == 0 {
			return false, err
		}
		for _, d := range page {
			after = d.ID
			q.mu.Lock()
			fresh := !q.fair.holds(d.ID)
			added := q.fair.add(&job{id: d.ID, repoID: repo, stored: d})
			if fresh && added {
				q.cond.Signal()
			}
			q.mu.Unlock()
			if !added {
				return true, nil
			}
		}
	}
}
