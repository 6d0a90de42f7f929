package store

import (
	"errors"
	"testing"
)

func TestPRApprovals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/forked")
		const head, next = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
		if _, err := s.PRApproval(ctx, repo.ID, head); !errors.Is(err, ErrNotFound) {
			t.Fatalf("approval before any: got %v, want ErrNotFound", err)
		}
		if ok, err := s.ApprovePR(ctx, PRApproval{RepoID: repo.ID, HeadSHA: head, By: "maintainer", RunID: 7}); !ok || err != nil {
			t.Fatalf("ApprovePR: got %v, %v; want true, nil", ok, err)
		}
		if ok, err := s.ApprovePR(ctx, PRApproval{RepoID: repo.ID, HeadSHA: head, By: "other"}); ok || err != nil {
			t.Fatalf("ApprovePR again: got %v, %v; want false, nil", ok, err)
		}
		a, err := s.PRApproval(ctx, repo.ID, head)
		if err != nil || a.By != "maintainer" || a.RunID != 7 || a.At.IsZero() {
			t.Fatalf("PRApproval: got %+v, %v; want the first approval (maintainer, run 7)", a, err)
		}
		if _, err := s.PRApproval(ctx, repo.ID, next); !errors.Is(err, ErrNotFound) {
			t.Errorf("approval of a new head: got %v, want ErrNotFound", err)
		}
		if err := s.DeleteRepo(ctx, repo.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PRApproval(ctx, repo.ID, head); !errors.Is(err, ErrNotFound) {
			t.Errorf("approval after the repository was deleted: got %v, want ErrNotFound", err)
		}
	})
}

func TestForkPipelineSetting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/base-pipeline")
		if repo.ForkPipelineFromBase {
			t.Fatal("a new repository takes the fork's pipeline from the base branch; want its head (the default)")
		}
		repo.ForkPipelineFromBase = true
		if err := s.UpdateRepo(ctx, *repo); err != nil {
			t.Fatal(err)
		}
		if got, err := s.RepoByID(ctx, repo.ID); err != nil || !got.ForkPipelineFromBase {
			t.Errorf("after UpdateRepo: ForkPipelineFromBase %v, %v; want true", got != nil && got.ForkPipelineFromBase, err)
		}
	})
}
