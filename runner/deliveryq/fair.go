package deliveryq

// fair holds the deliveries in memory, grouped by repository, and hands
// them out round-robin across repositories with at most perRepo of one
// repository out at a time. It is plain data: the Queue guards it with
// its mutex.
type fair struct {
	held, heldPerRepo, perRepo int

	repos map[int64]*repoJobs
	ready []int64        // repositories with a job to hand out and room, in turn order
	ids   map[int64]bool // delivery ids held (waiting or out)
	total int            // jobs waiting (not out)
}

type repoJobs struct {
	jobs    []*job
	out     int  // jobs handed out and not done
	inReady bool // listed in fair.ready
}

func newFair(held, heldPerRepo, perRepo int) *fair {
	return &fair{held: held, heldPerRepo: heldPerRepo, perRepo: perRepo,
		repos: map[int64]*repoJobs{}, ids: map[int64]bool{}}
}

// holds reports whether delivery id is waiting or out.
func (f *fair) holds(id int64) bool { return f.ids[id] }

// room is how many more jobs of repo may be held now (waiting or out).
func (f *fair) room(repo int64) int {
	n := f.heldPerRepo
	if r := f.repos[repo]; r != nil {
		n -= len(r.jobs) + r.out
	}
	return max(0, min(n, f.held-len(f.ids)))
}

// add holds j unless it is held already or there is no room; false
// when it was not added for lack of room.
func (f *fair) add(j *job) bool {
	if f.ids[j.id] {
		return true
	}
	if f.room(j.repoID) == 0 {
		return false
	}
	r := f.repos[j.repoID]
	if r == nil {
		r = &repoJobs{}
		f.repos[j.repoID] = r
	}
	r.jobs = append(r.jobs, j)
	f.ids[j.id] = true
	f.total++
	f.list(j.repoID, r)
	return true
}

// list puts repo in the turn order if it has a job and room to hand out.
func (f *fair) list(repo int64, r *repoJobs) {
	if !r.inReady && len(r.jobs) > 0 && r.out < f.perRepo {
		r.inReady = true
		f.ready = append(f.ready, repo)
	}
}

// next hands out the oldest job of the repository whose turn it is, or
// nil when no repository has a job and room.
func (f *fair) next() *job {
	if len(f.ready) == 0 {
		return nil
	}
	repo := f.ready[0]
	f.ready = f.ready[1:]
	r := f.repos[repo]
	r.inReady = false
	j := r.jobs[0]
	r.jobs[0] = nil
	r.jobs = r.jobs[1:]
	r.out++
	f.total--
	f.list(repo, r) // to the back of the turn order
	return j
}

// done returns j, handed out by next.
func (f *fair) done(j *job) {
	r := f.repos[j.repoID]
	r.out--
	delete(f.ids, j.id)
	if len(r.jobs) == 0 && r.out == 0 {
		delete(f.repos, j.repoID)
		return
	}
	f.list(j.repoID, r)
}
