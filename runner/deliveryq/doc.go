// Package deliveryq is the durable queue between the webhook edge and the
// run lifecycle: a verified hook delivery is stored before it is answered,
// and triggered afterwards by workers this package owns.
//
// Accept stores a delivery bound for ever to the repository whose secret
// or token verified it (store.Delivery.RepoID; a replay never reads the
// repository its payload names), deduplicated per repository, and offers
// it to an in-memory queue without blocking. What does not fit stays in
// the store; a sweeper brings it in when there is room, at start (Resume),
// and every SweepInterval. Nothing accepted is lost, and memory is bounded
// however far triggers fall behind.
//
// Workers take deliveries round-robin across repositories, at most PerRepo
// of one repository at a time (in arrival order), so a repository whose
// forge hangs holds at most PerRepo workers while the others serve
// everyone else. Each trigger is bounded by Timeout.
//
// A trigger that fails for a transient cause (the forge unreachable, a
// timeout, the store) is retried with backoff (Backoff, recorded in the
// store so that a restart keeps the schedule); its last attempt is marked
// Delivery.Last, and the trigger then ends in a visible run instead of an
// error. See Config.Trigger for the contract.
package deliveryq
