// Package logview reads step logs for people and programs. It is the one
// implementation behind the API's log endpoint, which the web UI and
// `runnel logs -f` both use, and behind the UI's log page:
//
//   - ReadPage serves a byte range of a log of any size, cut at line
//     boundaries (Cut), reading at most MaxPageBytes;
//   - Follow streams a growing log as Server-Sent Events, one event per
//     batch of complete lines with the byte offset after it as its id,
//     so a client renders a batch at a time and resumes where it was;
//     ReadEvents is the client side;
//   - ANSI turns escape sequences into styled segments from a fixed set
//     of classes, dropping every other control sequence.
//
// Logs are untrusted: nothing here interprets them beyond line breaks
// and SGR colours, and nothing reads more than a page into memory.
package logview
