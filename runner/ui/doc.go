// Package ui is Runnel's web UI: server-rendered HTML pages (html/template,
// embedded with the CSS and the one JavaScript file) for runs, a run's
// stages and steps, step logs (a page at a time, paged by byte range and
// followed live through the API's log endpoint, see runner/logview),
// agents and deployments.
//
// It owns its login: an API token entered in a form is checked with
// store.CheckToken and exchanged for a random session id kept in memory
// (the cookie never carries the token). Mutating forms carry a per-session
// CSRF token. Every response carries a Content-Security-Policy without
// inline script, so text from commits, branches and logs, which is
// untrusted, is only ever rendered as escaped text.
//
// Reads go to runner/store and runner/logstore directly; cancel, rerun and
// approvals go through the small Actions interface, which *runner.Runner
// implements.
package ui
