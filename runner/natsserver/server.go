package natsserver

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
)

// ServerUser is the NATS user name of the Runnel server; no agent may have
// it. It is also the sender token of the server's own updates.
const ServerUser = wire.ServerAgent

// AgentCredential is what the NATS server keeps about one agent: its name
// (= NATS user), the bcrypt hash of its secret and the labels it may take
// jobs for: only jobs whose required labels are a subset of Labels
// (enforced by its NATS permissions: it can create and pull from the
// consumers of those label sets only). No Labels: only jobs that need no
// labels (fail closed; an older file's "Fixed" field is ignored).
type AgentCredential struct {
	Name         string
	PasswordHash string
	Labels       map[string]string `json:",omitempty"`
}

// NewAgentCredential makes a fresh token "<name>:<secret>" (what the agent
// is given) and the credential the server keeps. The secret has 256 random
// bits, so bcrypt's minimum cost is enough and keeps connects fast.
func NewAgentCredential(name string) (token string, cred AgentCredential, err error) {
	if !wire.ValidName(name) || name == ServerUser {
		return "", AgentCredential{}, fmt.Errorf("agent name %q: must be 1-64 of [A-Za-z0-9_-] and not %q", name, ServerUser)
	}
	secret, err := randomSecret()
	if err != nil {
		return "", AgentCredential{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		return "", AgentCredential{}, fmt.Errorf("hash agent secret: %w", err)
	}
	return name + ":" + secret, AgentCredential{Name: name, PasswordHash: string(hash)}, nil
}

func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Options configure an embedded NATS server.
type Options struct {
	DataDir string // JetStream store lives in DataDir/jetstream
	Host    string // default 127.0.0.1
	Port    int    // 0 means 4222, -1 a random free port
	// ServerPassword is the password of ServerUser; empty generates one
	// (read it back with ServerCreds).
	ServerPassword string
	Agents         []AgentCredential
	Logger         *slog.Logger
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	srv   *server.Server
	base  server.Options
	creds natsbus.Creds
	log   *slog.Logger
}

// AgentPermissions are the NATS permissions of agent a. Enforced by the
// server for an agent's connection:
//   - publish only: updates and logs of any run on subjects naming itself
//     as the sender (runnel.v1.runs.*.updates.<name>, .logs.<name>), its
//     own presence and claim subjects, pull requests and consumer
//     info/creation on the JOBS stream (creation only for a consumer whose
//     single filter is one label-set subject or its priority subject), and acks on JOBS;
//   - subscribe only: its own inbox prefix (_INBOX.runnel.<name>.>) and
//     cancellations (runnel.v1.cancel.*).
//
// So an agent cannot publish jobs or cancels, cannot touch streams, cannot
// read another agent's replies or presence, cannot read logs, and cannot
// report updates or logs in another agent's name. Pulls, consumer info
// and creation are narrowed to the consumers of the label sets the
// credential's labels cover (wire.Subsets; none: the label-less set only),
// so an agent never receives a job that needs a label it was not given,
// whatever labels it announces. Not enforced here: which run an agent reports on (the server
// accepts a stage's updates and logs only from the agent that started its
// current attempt).
func AgentPermissions(a AgentCredential) (*server.Permissions, error) {
	name := a.Name
	pub := []string{
		wire.AgentUpdatesWildcard(name),
		wire.AgentLogsWildcard(name),
		wire.PresenceSubject(name),
		wire.ClaimSubject(name),
		"$JS.ACK." + natsbus.JobsStream + ".>",
	}
	// Only the consumers of the label sets the credential covers: every
	// subset of its labels, as the agent's intake makes them.
	keys, err := wire.Subsets(a.Labels)
	if err != nil {
		return nil, fmt.Errorf("agent %s: labels: %w", name, err)
	}
	for _, k := range keys {
		for _, c := range []struct{ name, filter string }{
			{wire.ConsumerName(k), wire.JobsPrefix + k},
			{wire.PriorityConsumerName(k), wire.JobsPrefix + k + wire.PrioritySuffix},
		} {
			pub = append(pub,
				"$JS.API.CONSUMER.MSG.NEXT."+natsbus.JobsStream+"."+c.name,
				"$JS.API.CONSUMER.INFO."+natsbus.JobsStream+"."+c.name,
				"$JS.API.CONSUMER.CREATE."+natsbus.JobsStream+"."+c.name+"."+c.filter)
		}
	}
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{
			natsbus.InboxPrefix(name) + ".>",
			wire.CancelWildcard,
		}},
	}, nil
}

// StartEmbedded starts a NATS server with JetStream and returns when it
// accepts connections.
func StartEmbedded(o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		return nil, errors.New("start nats: no data dir")
	}
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = 4222
	}
	pw := o.ServerPassword
	if pw == "" {
		var err error
		if pw, err = randomSecret(); err != nil {
			return nil, err
		}
	}
	users, err := userList(pw, o.Agents)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	sopts := &server.Options{
		ServerName: "runnel",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.DataDir + "/jetstream",
		Users:      users,
		NoSigs:     true,
		NoLog:      true,
	}
	if port > 0 {
		// nats-server reports a taken port only in its own log, and then
		// never becomes ready: try the address first to say why.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("start nats: %w", err)
		}
		ln.Close()
	}
	base := *sopts // NewServer keeps and changes sopts; SetAgents starts from a copy
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	go srv.Start() // Start returns quickly; the server owns its goroutines until Shutdown.
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("start nats: not ready within 10s")
	}
	log.Info("nats started", "url", srv.ClientURL())
	return &Server{srv: srv, base: base, creds: natsbus.Creds{User: ServerUser, Password: pw}, log: log}, nil
}

func userList(serverPassword string, agents []AgentCredential) ([]*server.User, error) {
	users := []*server.User{{Username: ServerUser, Password: serverPassword}}
	seen := map[string]bool{}
	for _, a := range agents {
		if !wire.ValidName(a.Name) || a.Name == ServerUser || seen[a.Name] {
			return nil, fmt.Errorf("invalid or duplicate agent name %q", a.Name)
		}
		seen[a.Name] = true
		perms, err := AgentPermissions(a)
		if err != nil {
			return nil, err
		}
		users = append(users, &server.User{Username: a.Name, Password: a.PasswordHash, Permissions: perms})
	}
	return users, nil
}

// SetAgents replaces the agent credentials without a restart. Connections
// of agents no longer listed are closed by the server.
func (s *Server) SetAgents(agents []AgentCredential) error {
	users, err := userList(s.creds.Password, agents)
	if err != nil {
		return fmt.Errorf("set agents: %w", err)
	}
	o := s.base
	o.Port = s.Port() // a -1 (random) port must stay the one chosen
	o.Users = users
	if err := s.srv.ReloadOptions(&o); err != nil {
		return fmt.Errorf("set agents: reload nats: %w", err)
	}
	return nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// Port is the port the server listens on (useful after Port -1).
func (s *Server) Port() int {
	_, p, err := net.SplitHostPort(s.srv.Addr().String())
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// ServerCreds are the Runnel server's credentials (all permissions).
func (s *Server) ServerCreds() natsbus.Creds { return s.creds }

// Shutdown stops the server, flushing JetStream, and waits for it.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}
