package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// Version is the protocol's major version, carried in every message as "v".
const Version = 1

// Limits of the protocol.
const (
	// MaxLabels is the most labels an agent (or a job's requirement) may have.
	MaxLabels = 6
	// MaxChunk is the largest LogChunk.Data.
	MaxChunk = 256 << 10
)

// ErrVersion reports a message of an unknown major protocol version.
var ErrVersion = errors.New("unsupported protocol version")

// Subject prefixes and wildcards.
const (
	Prefix           = "runnel.v1."
	JobsPrefix       = Prefix + "jobs."
	JobsWildcard     = Prefix + "jobs.>"
	RunsWildcard     = Prefix + "runs.>"
	UpdatesWildcard  = Prefix + "runs.*.updates.*"
	LogsWildcard     = Prefix + "runs.*.logs.*"
	CancelWildcard   = Prefix + "cancel.*"
	PresenceWildcard = Prefix + "agents.*.hello"
)

// ServerAgent is the sender token of updates the server makes itself
// (KindLost); it is the server's NATS user, which no agent may have.
const ServerAgent = "runnel-server"

// Workspace says what the stage's workspace starts with. Kind "git" means
// clone URL and check out Commit (Ref is informational, e.g. for
// RUNNEL_REF); an empty Kind means an empty workspace.
type Workspace struct {
	Kind   string `json:"kind,omitempty"`
	URL    string `json:"url,omitempty"`
	Commit string `json:"commit,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Depth  int    `json:"depth,omitempty"` // 0 means full history
}

// Job is one stage attempt to run: published by the server on
// JobSubject(Stage.Labels).
type Job struct {
	V       int    `json:"v"`
	RunID   string `json:"run_id"`
	StageID string `json:"stage_id"`
	// Attempt is the fencing token the server assigned at publish; an
	// agent runs the job only as the attempt its claim was granted.
	Attempt   int             `json:"attempt"`
	Stage     *pipeline.Stage `json:"stage"`
	Workspace Workspace       `json:"workspace"`
	// Deadline is when the stage must be finished; zero means none. An
	// agent refuses (terminates) a job whose deadline has passed.
	Deadline time.Time `json:"deadline,omitempty"`
	// Install is the server's install id: run ids are unique only within
	// it, so an agent puts it on every Docker resource of the job and
	// cleans up only resources carrying it. "" (an older server) means the
	// agent's own install id.
	Install string `json:"install,omitempty"`
	// Priority puts the job ahead of the label set's queue: it goes to
	// PriorityJobSubject, which agents pull from beside the normal one,
	// so it waits for the next free slot instead of behind every job
	// already queued. The server sets it for stages that hold a
	// concurrency group (later runs wait for them) and for retries.
	Priority bool `json:"priority,omitempty"`
	// Transfer is the job's access to the server's artifact store, set
	// when the stage has artifacts, receives some, fetches or caches; nil
	// means no store (see Transfers in the package doc).
	Transfer *Transfer `json:"transfer,omitempty"`
	// Secrets are the values of the stage's secrets (Stage.Secrets) the
	// server gives out for this run; see Secrets in the package doc.
	Secrets []Secret `json:"secrets,omitempty"`
	// Withheld says, one line per secret, why a secret the stage asks for
	// is not in Secrets (a limit of the secret, an untrusted pull
	// request); the agent writes them at the top of the first step's log.
	Withheld []string `json:"withheld,omitempty"`
}

// Secret is one secret value of a job: delivered as the variable Env
// and/or the file pipeline.SecretsDir/File, and masked in every log.
type Secret struct {
	Name  string `json:"name"`
	Env   string `json:"env,omitempty"`
	File  string `json:"file,omitempty"`
	Value string `json:"value"`
}

// Kind is the kind of an Update.
type Kind string

// Update kinds.
const (
	KindStarted      Kind = "started"
	KindStepStarted  Kind = "step_started"
	KindStepFinished Kind = "step_finished"
	KindFinished     Kind = "finished"
	KindHeartbeat    Kind = "heartbeat"
	// KindLost is made by the server's dispatcher, never sent by an agent:
	// JetStream gave up on the job after MaxDeliver deliveries.
	KindLost Kind = "lost"
	// KindDeploy reports the progress of a deploy step (Update.Deploy):
	// each phase of the release and, last, its outcome.
	KindDeploy Kind = "deploy"
)

// DeployProgress is where a deploy step's release is (see package deploy).
type DeployProgress struct {
	Provider string `json:"provider"`
	App      string `json:"app"`
	Version  string `json:"version"`
	// From is the version that served before ("" for a first release or
	// while unknown).
	From  string `json:"from,omitempty"`
	Phase string `json:"phase"`
	// Weight is the percentage of traffic on the new version.
	Weight int `json:"weight"`
	// Outcome is set on the last report: succeeded, failed or
	// rolled_back.
	Outcome string `json:"outcome,omitempty"`
}

// legacyCanceled is how agents before the one vocabulary (package
// rules) spelled canceled; Decode reads it as rules.Canceled.
const legacyCanceled = "cancelled"

// Update reports progress of one stage attempt, on UpdatesSubject(RunID,
// Agent). Agent must be the agent its subject names.
type Update struct {
	V        int          `json:"v"`
	RunID    string       `json:"run_id"`
	StageID  string       `json:"stage_id"`
	Attempt  int          `json:"attempt"`
	Agent    string       `json:"agent"`
	Kind     Kind         `json:"kind"`
	Step     string       `json:"step,omitempty"`
	Status   rules.Status `json:"status,omitempty"`
	ExitCode int          `json:"exit_code,omitempty"`
	// Attempts is how often a finished step ran (1 + its retries); 0 from
	// older agents means 1.
	Attempts int    `json:"attempts,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// LogChunks is, in a step's KindStepFinished, how many log chunks the
	// step's log was sent in (its EOF chunk is LogChunks-1), so the server
	// waits for a chunk it failed to store; 0 from older agents and for
	// steps without a log.
	LogChunks uint64 `json:"log_chunks,omitempty"`
	// Seq numbers the updates of one attempt from 0, for ordering and
	// deduplication.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Deploy is set for KindDeploy.
	Deploy *DeployProgress `json:"deploy,omitempty"`
}

// LogChunk is a piece of a step's output, on LogsSubject(RunID, Agent).
type LogChunk struct {
	V       int    `json:"v"`
	RunID   string `json:"run_id"`
	StageID string `json:"stage_id"`
	Attempt int    `json:"attempt"`
	// Agent is the sender; the server sets it from the subject (a chunk
	// naming another agent than its subject is dropped).
	Agent string `json:"agent,omitempty"`
	Step  string `json:"step"`
	Seq   uint64 `json:"seq"` // from 0 per (run, stage, attempt, step)
	Data  []byte `json:"data,omitempty"`
	EOF   bool   `json:"eof,omitempty"`
}

// Cancel asks agents to stop a run's stages, on CancelSubject(RunID).
type Cancel struct {
	V       int    `json:"v"`
	RunID   string `json:"run_id"`
	StageID string `json:"stage_id,omitempty"` // empty: every stage of the run
	Attempt int    `json:"attempt,omitempty"`  // 0: every attempt
	Reason  string `json:"reason,omitempty"`
}

// Matches reports whether c applies to the given stage attempt.
func (c *Cancel) Matches(runID, stageID string, attempt int) bool {
	return c.RunID == runID &&
		(c.StageID == "" || c.StageID == stageID) &&
		(c.Attempt == 0 || c.Attempt == attempt)
}

// Presence kinds.
const (
	PresenceHello     = "hello"
	PresenceHeartbeat = "heartbeat"
	PresenceBye       = "bye"
)

// Presence is an agent's hello, heartbeat or bye, on PresenceSubject(Name).
type Presence struct {
	V        int               `json:"v"`
	Kind     string            `json:"kind"`
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	Capacity int               `json:"capacity"`
	Running  int               `json:"running"`
	Software string            `json:"software,omitempty"` // agent build version
	// Interval is the time until the next heartbeat.
	Interval pipeline.Duration `json:"interval"`
	Time     time.Time         `json:"time"`
}

// AgentStatus is an agent as the server's side of the bus knows it from
// its presence messages: what the runner, the API and the UI see.
type AgentStatus struct {
	Presence
	LastSeen time.Time
	// Lost: silent for several heartbeat intervals, or it said bye.
	Lost bool
}

// Message is any of the protocol's message types.
type Message interface {
	version() *int
}

func (m *Job) version() *int      { return &m.V }
func (m *Update) version() *int   { return &m.V }
func (m *LogChunk) version() *int { return &m.V }
func (m *Cancel) version() *int   { return &m.V }
func (m *Presence) version() *int { return &m.V }

// Encode sets m's version to Version and returns its JSON.
func Encode(m Message) ([]byte, error) {
	*m.version() = Version
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return b, nil
}

// Decode reads JSON into m and rejects unknown major versions.
func Decode(b []byte, m Message) error {
	if err := json.Unmarshal(b, m); err != nil {
		return fmt.Errorf("decode %T: %w", m, err)
	}
	if v := *m.version(); v != Version {
		return fmt.Errorf("decode %T: version %d: %w", m, v, ErrVersion)
	}
	if u, ok := m.(*Update); ok && u.Status == legacyCanceled {
		u.Status = rules.Canceled
	}
	return nil
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports whether s may be an agent name: 1 to 64 characters of
// [A-Za-z0-9_-].
func ValidName(s string) bool { return tokenRE.MatchString(s) }

// Token returns s when it is a valid subject token (see ValidName) and
// otherwise "h" followed by 32 hex digits of SHA-256(s). The result never
// contains '.', '*', '>' or whitespace.
func Token(s string) string {
	if tokenRE.MatchString(s) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h" + hex.EncodeToString(sum[:16])
}

// JobSubject is the subject of a job requiring labels.
func JobSubject(labels map[string]string) string { return JobsPrefix + LabelSetKey(labels) }

// PrioritySuffix ends the subjects of priority jobs (Job.Priority).
const PrioritySuffix = ".prio"

// PriorityJobSubject is the subject of a priority job requiring labels.
func PriorityJobSubject(labels map[string]string) string { return JobSubject(labels) + PrioritySuffix }

// UpdatesSubject is where agent sends the updates of a run.
func UpdatesSubject(runID, agent string) string {
	return Prefix + "runs." + Token(runID) + ".updates." + Token(agent)
}

// LogsSubject is where agent sends the log chunks of a run.
func LogsSubject(runID, agent string) string {
	return Prefix + "runs." + Token(runID) + ".logs." + Token(agent)
}

// AgentUpdatesWildcard matches the updates subjects of agent, any run.
func AgentUpdatesWildcard(agent string) string { return Prefix + "runs.*.updates." + Token(agent) }

// AgentLogsWildcard matches the log chunk subjects of agent, any run.
func AgentLogsWildcard(agent string) string { return Prefix + "runs.*.logs." + Token(agent) }

// EventSubject is what an updates or logs subject says: the run token,
// whether it carries log chunks, and the sender's token.
type EventSubject struct {
	Run   string
	Logs  bool
	Agent string
}

// ParseEventSubject splits an UpdatesSubject or LogsSubject; ok is false
// for any other subject.
func ParseEventSubject(subject string) (e EventSubject, ok bool) {
	rest, found := strings.CutPrefix(subject, Prefix+"runs.")
	if !found {
		return EventSubject{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return EventSubject{}, false
	}
	switch parts[1] {
	case "updates":
	case "logs":
		e.Logs = true
	default:
		return EventSubject{}, false
	}
	e.Run, e.Agent = parts[0], parts[2]
	return e, true
}

// CancelSubject is where cancellations of a run go.
func CancelSubject(runID string) string { return Prefix + "cancel." + Token(runID) }

// PresenceSubject is where agent name sends its presence.
func PresenceSubject(name string) string { return Prefix + "agents." + Token(name) + ".hello" }

// JobMsgID is the JetStream message id of a job: a new attempt gets a new
// id, a publish retry of the same attempt the same one.
func JobMsgID(runID, stageID string, attempt int) string {
	return fmt.Sprintf("job/%s/%s/%d", runID, stageID, attempt)
}

// LogMsgID is the JetStream message id of a log chunk.
func LogMsgID(c *LogChunk) string {
	return fmt.Sprintf("log/%s/%s/%d/%s/%d", c.RunID, c.StageID, c.Attempt, c.Step, c.Seq)
}

// UpdateMsgID is the JetStream message id of an update.
func UpdateMsgID(u *Update) string {
	return fmt.Sprintf("upd/%s/%s/%d/%d", u.RunID, u.StageID, u.Attempt, u.Seq)
}

// ValidateLabels checks a label set: at most MaxLabels labels, keys
// non-empty without '=' or newline, values without newline.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fmt.Errorf("%d labels, at most %d allowed", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if k == "" || strings.ContainsAny(k, "=\n") {
			return fmt.Errorf("label key %q: must be non-empty without '=' or newline", k)
		}
		if strings.Contains(v, "\n") {
			return fmt.Errorf("label %q: value must not contain a newline", k)
		}
	}
	return nil
}

// LabelSetKey is the canonical subject token of a label set: "any" for
// the empty set, otherwise 32 hex digits of SHA-256 over the sorted
// lines of Go-quoted key "=" Go-quoted value.
func LabelSetKey(labels map[string]string) string {
	if len(labels) == 0 {
		return "any"
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q\n", k, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Subsets returns the LabelSetKey of every subset of labels (2^n keys,
// "any" first), sorted after the first. It fails for invalid label sets.
func Subsets(labels map[string]string) ([]string, error) {
	if err := ValidateLabels(labels); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := len(keys)
	out := make([]string, 0, 1<<n)
	for mask := 0; mask < 1<<n; mask++ {
		sub := make(map[string]string)
		for i, k := range keys {
			if mask&(1<<i) != 0 {
				sub[k] = labels[k]
			}
		}
		out = append(out, LabelSetKey(sub))
	}
	sort.Strings(out[1:])
	return out, nil
}

// ConsumerName is the durable JetStream consumer of a label-set key.
func ConsumerName(setKey string) string { return "jobs-" + setKey }

// PriorityConsumerName is the durable consumer of a label-set key's
// priority jobs.
func PriorityConsumerName(setKey string) string { return "jobs-" + setKey + "-prio" }
