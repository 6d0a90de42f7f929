// Package access holds the roles of API tokens and the one rule of what
// each role may do: Allows. Every API endpoint and every UI action names
// the Permission it needs and asks Allows; nothing else decides access.
package access
