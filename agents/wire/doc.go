// Package wire is the protocol between the Runnel server and its agents:
// the NATS subjects, the JSON message types and the rules both sides obey.
// This comment is the specification; the code below only spells it out.
//
// # Versioning
//
// Every message carries "v", the protocol's major version ([Version], now
// 1), and every subject starts with "runnel.v1.". Within a major version
// changes are additive (new optional fields; old readers ignore them).
// [Decode] rejects a message whose major version is not [Version] with
// [ErrVersion]; a missing "v" counts as unknown.
//
// An Update's status is a [rules.Status], spelled as everywhere else
// (the store, the API, `runnel run --summary-json`): success, failure,
// timeout, error, canceled, skipped. Agents built before that spelled
// canceled "cancelled"; [Decode] still reads it so. A server built
// before reads an agent's "canceled" as error: upgrade the server first.
//
// # Subjects
//
//	runnel.v1.jobs.<set>                  Job       server → agents (JetStream stream JOBS, work queue)
//	runnel.v1.jobs.<set>.prio             Job       the same, for jobs with Priority set
//	runnel.v1.runs.<run>.updates.<agent>  Update    agent → server (JetStream stream EVENTS)
//	runnel.v1.runs.<run>.logs.<agent>     LogChunk  agent → server (JetStream stream EVENTS)
//	runnel.v1.claims.<agent>              Claim     agent → server (core NATS request, ClaimReply)
//	runnel.v1.cancel.<run>                Cancel    server → agents (core NATS)
//	runnel.v1.agents.<name>.hello         Presence  agent → server (core NATS; hello, heartbeat, bye)
//
// No untrusted string is ever spliced into a subject. <run> and <name> go
// through [Token], which passes a short string of [A-Za-z0-9_-] through and
// replaces anything else by a hash; <set> is a hash of a label set. Subjects
// only route: the IDs inside the payload are authoritative and receivers
// check them; the exception is the sender <agent> (see Senders). Agent names must already be valid tokens ([ValidName]): they
// are the agents' NATS user names and their permissions name them.
//
// # Senders
//
// Updates and log chunks name their sender in the subject: <agent> is the
// sending agent's name ([UpdatesSubject], [LogsSubject]), and the NATS
// server lets an agent publish only on subjects ending in its own name
// ([AgentUpdatesWildcard], [AgentLogsWildcard]), so the subject is
// authenticated. Updates the server makes itself (KindLost) carry
// [ServerAgent], which no agent may be named. The server drops an Update
// whose Agent is not its subject's agent and sets LogChunk.Agent from the
// subject (dropping a chunk that names another agent). It accepts an
// update or log chunk for a stage only from the agent that started its
// current attempt (the agent of the accepted "started"); a "started" of
// a new attempt names the agent that owns it from then on.
//
// # Label matching
//
// A stage requires labels R (pipeline.Stage.Labels); an agent with labels L
// may run it when R ⊆ L (every k=v of R is in L). A job is published on
// runnel.v1.jobs.<LabelSetKey(R)>: "any" for the empty set, otherwise the
// first 128 bits of SHA-256 over the sorted lines "%q=%q\n" (key, value), in hex. An agent
// consumes the subjects of every subset of L ([Subsets]); an agent may have
// at most [MaxLabels] labels, so at most 64 subjects. JetStream forbids
// overlapping consumers on a work-queue stream, so each label-set subject
// has exactly one durable consumer ([ConsumerName]; its priority subject
// one more, [PriorityConsumerName]), shared by every agent
// whose labels include that set: "one consumer per distinct required set,
// agents pull from all subsets of their set". A job requiring more than
// MaxLabels labels can never match and is refused at publish.
//
// # Leases, attempts and fencing
//
// Stage attempts are fencing tokens, and the server (its store) alone
// makes them: the transport's delivery count never decides an attempt.
// The server accepts an update only when its Attempt is the stage's
// current attempt and it comes from the agent whose claim was granted.
// The rules:
//
//  1. The server publishes a Job with Attempt = the stage's new attempt
//     (the first is 1, each retry one more) and the JetStream message id
//     JobMsgID(run, stage, attempt), so a publish retry is deduplicated.
//  2. JetStream hands the message to one agent and holds it for AckWait
//     (30 s). The agent extends that hold at once on receipt and then
//     every 5 s (a synchronous in-progress ack, "+WPI"), until rule 3
//     settles the job.
//  3. Before it touches anything for the job (workspace, Docker) the
//     agent claims it: a [Claim] request on ClaimSubject(agent) naming the
//     job's run, stage and attempt and a token unique to the delivery,
//     sent again with the same token until the server answers. The server
//     grants a claim once per attempt, to the first token, with a
//     conditional write; the same token gets the same answer again. A
//     claim for an attempt that is not the stage's current one, for a
//     finished stage, or for an attempt another token holds is refused,
//     and so is a claim for a stage that needs labels the agent's
//     credential does not allow. The agent terminates a refused job's
//     message (a copy: the job runs elsewhere or is over), hands it back
//     when the refusal says ClaimReply.Release (to run elsewhere), and
//     acknowledges a granted one: from then on the server, not
//     JetStream, owns the attempt.
//  4. The agent reports "started" and the rest with the granted attempt,
//     and a "heartbeat" update every 5 s while the stage runs. The lease
//     starts with the grant: the server re-queues the stage as a new
//     attempt (and tells the old one to stop) when the attempt sent
//     nothing for its lease timeout (ClaimReply.Lease, --lease-timeout),
//     and ends it error/agent_lost after 5 attempts. The agent stops the
//     stage (cancels its context) when it could not store a heartbeat
//     for the lease minus its margin, so a cut-off agent stops before
//     the server gives the stage to another attempt.
//  5. A job whose message JetStream delivered MaxDeliver times without
//     a settled claim is given up: the server turns the advisory into an
//     Update of kind "lost" for the job's attempt and deletes the message.
//  6. An update of an attempt that is not the current one, or for a
//     stage the server considers finished, is answered with a Cancel
//     naming that attempt.
//
// # Cancellation
//
// Cancel is core NATS: an agent that is disconnected when it is sent misses
// it, so the server repeats it on every update it receives from a
// cancelled stage. StageID and Attempt narrow a Cancel; empty/zero mean
// every stage/attempt of the run.
//
// # Logs
//
// A step's output travels as LogChunk messages of at most [MaxChunk] bytes
// (NATS' default max payload is 1 MiB and base64 adds a third), numbered
// from 0 per (run, stage, attempt, step) by Seq; the last chunk has EOF set
// (possibly with no data). Long lines are split, never dropped. Chunks are
// published to JetStream with message id LogMsgID so a publish retry is
// not stored twice; the server orders by Seq. A step's KindStepFinished
// says how many chunks its log was sent in (LogChunks): the server keeps
// the log open, for a bounded time, for chunks it failed to store and
// that come again after the step's end.
//
// # Transfers
//
// A job whose stage moves files (its artifacts, the artifacts it
// receives, fetches, caches) carries Transfer: the URL of its transfer API
// on the server, <base>/api/v1/transfer/<token>, and when the token
// expires. Agents hold no store credentials. The token is signed by the
// server and names the run, the stage, the attempt and whether the run may
// write caches; it works only while that stage is unfinished at that
// attempt or a later one (the server checks on every call). The API
// speaks JSON; errors are {"error": "..."}:
//
//	POST <url>/lookup  LookupRequest  200 Object | 404 no such object
//	POST <url>/upload  UploadRequest  200 Upload | 403 may not write | 409 exists already
//	POST <url>/commit  UploadRequest  204 recorded | 409 the stored content differs
//
// What a token reaches: artifacts: lookup of a stage in the job stage's
// Receive, upload and commit of the job's own stage (Name = its ID);
// caches: the entries of the run's repository, read by every run, written
// only by runs that may write caches (not pull requests, for a fork's
// could poison them);
// fetched files: any, by SHA-256 (the content is checked against its
// name, so sharing them is safe).
//
// Object.URL and Upload.URL are short-lived: a presigned S3 URL, or a
// signed URL of the server's blob API (<base>/api/v1/blobs/...) for the
// filesystem store. A reader checks size and SHA-256 of what it GETs
// against the Object. An upload is one PUT of exactly Size bytes with the
// Upload's headers; the store refuses content whose SHA-256 is not the
// declared one (S3 by the signed checksum header, the server's blob API
// itself), and commit records the object only after checking what is
// stored.
//
// # Secrets
//
// A job carries the values of the secrets its stage asks for
// (Job.Secrets), resolved by the server when it publishes the job, and
// only those the secret's limits and the run's trust allow (the others
// are named in Job.Withheld). A job is therefore secret itself: the jobs
// stream lives in the server's private data directory (or the NATS
// cluster's storage), only the server may publish jobs, and an agent may
// only pull from the consumers of the label sets its credential allows;
// the JetStream message is removed when the agent acknowledges it. The
// agent passes values to the engine's API as environment variables or
// tmpfs files, never on a command line, and masks every value (and its
// encoded forms, agents/logs.Variants) in the step logs before a byte
// leaves it.
//
// # Presence
//
// An agent publishes a Presence of kind "hello" when it connects, then
// "heartbeat" every Interval (5 s), and "bye" when it stops. The server
// considers it lost after a few missed heartbeats. Presence is
// informational: leases, not presence, decide about jobs.
package wire
