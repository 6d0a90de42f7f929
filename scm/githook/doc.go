// Package githook connects a bare repository on the Runnel host to the
// server: Install writes a post-receive hook, and PostReceive (run by that
// hook through "runnel hook post-receive") posts each updated branch or tag
// to the server's generic hook endpoint.
//
// A push is never dropped: PostReceive writes each pushed ref to a file
// queue inside the repository (SpoolDir, one file per ref, written
// atomically) and then sends the queue oldest first (Flush). A push the
// server does not take stays queued, and the pusher is told its run is
// delayed, not lost; the next push, "runnel hook flush" and the server's
// start send it. Each queued push keeps one delivery id, which the server
// stores, so a push sent twice still makes one run.
//
// The hook script holds no data but the absolute path of the runnel
// binary: server URL, repository name and token live in the repository's
// git config (runnel.server, runnel.repo, runnel.token), with RUNNEL_SERVER,
// RUNNEL_REPO and RUNNEL_TOKEN as fallbacks. Ref names and commit messages
// are only ever read by Go code, never spliced into shell text.
//
// Install refuses to replace a post-receive hook it did not write
// (ErrHookExists); the caller may move that hook away and install again,
// or call it from its own hook. Re-installing over Runnel's own hook
// updates it. The token is stored in the repository's config file, so
// whoever can read the repository can read the token: make it a
// per-repository token.
package githook
