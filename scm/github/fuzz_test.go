package github

import (
	"testing"
)

func FuzzGitHubHook(f *testing.F) {
	for _, s := range []struct{ event, file string }{
		{"push", "push.with-new-branch.json"}, {"push", "push.tag.json"}, {"push", "push.deleted.json"},
		{"push", "push.update.json"}, {"pull_request", "pull_request.opened.json"},
		{"pull_request", "pull_request.synchronize.json"}, {"ping", "ping.json"},
	} {
		f.Add(s.event, fixture(f, s.file))
	}
	f.Add("push", []byte(`{"ref":"refs/heads/x","after":null,"commits":[null]}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		r := request(event, body, nil) // validly signed: reaches the decoder
		ev, err := Parse(r, secret)
		if err == nil && (ev.Commit == "" || ev.Repo == "" || ev.Kind == "") {
			t.Fatalf("got event %+v without commit, repo or kind", ev)
		}
	})
}
