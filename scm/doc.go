// Package scm owns what Runnel knows about source control: the Event a
// trigger produces (a forge webhook, the git post-receive hook, a manual or
// cron trigger), the errors a webhook handler maps to HTTP statuses, and the
// small interfaces forges implement (Hook to turn a request into an Event,
// StatusReporter to report a commit status).
//
// Forges live in subpackages (github, gitea, gitlab, generic); githook
// installs and runs the post-receive hook of a bare repository; gitrepo
// reads files and commits from repositories and checks out workspaces.
//
// Every string of an Event may come from an untrusted party (branch names,
// commit messages, authors). Consumers must place them in environment
// variables or structured data, never into shell text.
package scm
