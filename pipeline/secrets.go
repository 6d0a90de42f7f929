package pipeline

import (
	"fmt"
	"regexp"
)

// MinSecretLen is the shortest secret value Runnel accepts: a shorter one
// would be masked wherever its characters happen to appear in a log, and
// masking would hide little.
const MinSecretLen = 6

var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// CheckSecretName returns an error unless name can name a secret: 1 to 64
// letters, digits and '_', not starting with a digit (it becomes an
// environment variable name), and not RUNNEL_*, which Runnel sets itself.
func CheckSecretName(name string) error {
	if !secretNameRE.MatchString(name) {
		return fmt.Errorf("secret name %q: want 1 to 64 of A-Z, a-z, 0-9 and _, not starting with a digit", name)
	}
	if len(name) >= 7 && name[:7] == "RUNNEL_" {
		return fmt.Errorf("secret name %q: RUNNEL_* names are Runnel's own", name)
	}
	return nil
}
