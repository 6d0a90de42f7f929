// Package badge renders shields.io-style "flat" SVG status badges for
// READMEs and serves them over HTTP.
//
// A badge has a grey label on the left (for example "runnel" or a stage
// name) and a coloured status on the right. Text widths are estimated from
// a per-character advance table for Verdana 11px, as shields.io does, so no
// font is needed at render time.
//
// Serve writes a badge with headers suited to image proxies: GitHub's camo
// caches images unless told not to, so responses carry
// "Cache-Control: no-cache, max-age=0" plus an ETag, and a matching
// If-None-Match is answered with 304 Not Modified.
package badge
