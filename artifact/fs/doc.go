// Package fs is the filesystem artifact.Store: objects live in files under
// a root directory, each with a small JSON metadata file beside it holding
// the SHA-256 and size recorded by Put.
//
// Layout under the root: objects/ holds the tree of keys, where a key
// "a/b/c" becomes objects/a.d/b.d/c.obj (content) and objects/a.d/b.d/c.json
// (metadata). The suffixes keep a key and a longer key below it ("a" and
// "a/b") from colliding as file and directory. tmp/ holds writes in
// progress; every file enters objects/ by rename, so readers never see a
// partial write.
package fs
