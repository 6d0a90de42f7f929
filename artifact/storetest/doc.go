// Package storetest is the conformance suite for artifact.Store
// implementations: every implementation's tests call Run.
package storetest
