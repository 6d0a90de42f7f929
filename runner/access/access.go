package access

import (
	"fmt"
	"strings"
	"unicode"
)

// Role is what a token may do.
type Role string

// Roles, from most to least powerful.
const (
	// Admin may do everything: manage repositories, environments,
	// schedules and tokens, besides what an operator may.
	Admin Role = "admin"
	// Operator may start, cancel, re-run and approve runs (and schedule
	// one-off runs) besides reading.
	Operator Role = "operator"
	// Read may only read: runs, logs, repositories, agents.
	Read Role = "read"
)

// Roles lists the roles, most powerful first.
var Roles = []Role{Admin, Operator, Read}

// Permission is what an endpoint or action needs.
type Permission int

// Permissions, each including the ones before it.
const (
	// View reads runs, logs, repositories, agents, deployments.
	View Permission = iota
	// Operate triggers, cancels, re-runs, approves or rejects runs and
	// schedules or removes one-off runs.
	Operate
	// Administer changes configuration: repositories, environments,
	// cron schedules and tokens.
	Administer
)

func (p Permission) String() string {
	switch p {
	case View:
		return "read"
	case Operate:
		return "operator"
	case Administer:
		return "admin"
	}
	return fmt.Sprintf("permission(%d)", int(p))
}

// Allows reports whether role r has permission p. An unknown role has
// none (fail closed).
func Allows(r Role, p Permission) bool {
	switch r {
	case Admin:
		return true
	case Operator:
		return p <= Operate
	case Read:
		return p == View
	}
	return false
}

// Parse checks a role name.
func Parse(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("role %q: want admin, operator or read", s)
}

// CheckTokenName returns why name cannot name an API token, or "".
func CheckTokenName(name string) string {
	switch {
	case strings.TrimSpace(name) == "":
		return "name is required"
	case len(name) > 100:
		return "name is longer than 100 bytes"
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return "name has control characters"
	}
	return ""
}
