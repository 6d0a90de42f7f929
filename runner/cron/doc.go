// Package cron runs schedules: cron schedules of a repository's branch
// and one-off runs at a time, both kept in the store.
//
// The rules are pure functions: Parse checks a cron expression (five
// fields, or six with seconds first, or a descriptor such as @daily) in
// a time zone, and Due decides, from a schedule's stored next tick and
// the time now, which tick to run (at most one) and when the next one
// is. A tick missed while no server ran is run once, late, or skipped,
// as the schedule says; several missed ticks never make several runs.
//
// Scheduler is the loop around them. Exactly one run per tick, across
// restarts, SIGKILLs and servers sharing a PostgreSQL database, rests on
// the store: a server claims a tick by moving the schedule's next tick
// forward only if nobody else did (compare and set) and recording the
// tick in the same transaction; the run made for a tick is linked to it
// inside the transaction that creates the run, which fails when the tick
// already has one. A tick claimed by a server that died before its run
// existed is fired again by any server once its lease has passed (at
// once by the same install after a restart).
package cron
