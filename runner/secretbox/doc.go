// Package secretbox encrypts the server's secrets at rest: pipeline
// secrets, webhook secrets and forge tokens. Values are sealed with
// AES-256-GCM under the install's key, which lives in DATA/secret.key
// (mode 0600, made at first start) or in RUNNEL_SECRET_KEY. A sealed
// value names its key, so a rotation (Rotate, `runnel secret rotate-key`)
// can re-seal every value under a new key while the old one still opens
// what it sealed.
package secretbox
