package gitmirror

import (
	"errors"
	"net/url"
	"strings"
)

// ErrURLCredentials reports a clone URL that carries credentials: they
// would show wherever the URL does (errors, logs, the API and the UI).
var ErrURLCredentials = errors.New("credentials in the URL")

// hasCredentials says whether u carries a credential: a password, or for
// http(s) any userinfo (a forge token is often given as the user name).
func hasCredentials(u *url.URL) bool {
	if u.User == nil {
		return false
	}
	if _, ok := u.User.Password(); ok {
		return true
	}
	s := strings.ToLower(u.Scheme)
	return s == "http" || s == "https"
}

// CheckNoCredentials refuses a clone URL that carries credentials
// (https://user:token@host/..., https://token@host/...). A user name alone
// is fine for ssh:// and git@host:path.
func CheckNoCredentials(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !hasCredentials(u) {
		return nil
	}
	return ErrURLCredentials
}

// Redact returns raw with its credentials replaced by "***", for errors,
// logs and views.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !hasCredentials(u) {
		return raw
	}
	u.User = nil
	return strings.Replace(u.String(), "://", "://***@", 1)
}
