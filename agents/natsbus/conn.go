package natsbus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/runnel-ci/runnel/agents/wire"
)

// Stream names both sides of the bus use.
const (
	JobsStream   = "JOBS"
	EventsStream = "EVENTS"
)

// Creds are a NATS user name and password.
type Creds struct {
	User     string
	Password string
}

// ParseAgentToken splits a token made by NewAgentCredential.
func ParseAgentToken(token string) (Creds, error) {
	name, secret, ok := strings.Cut(token, ":")
	if !ok || !wire.ValidName(name) || secret == "" {
		return Creds{}, errors.New("agent token: want NAME:SECRET")
	}
	return Creds{User: name, Password: secret}, nil
}

// InboxPrefix is the reply-subject prefix of NATS user.
func InboxPrefix(user string) string { return "_INBOX.runnel." + wire.Token(user) }

// Connect connects to url as creds.User with reconnects that never give up
// (JetStream state survives a server restart), and the user's own inbox
// prefix (agents may subscribe only there).
func Connect(url string, creds Creds, opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{
		nats.Name(creds.User),
		nats.UserInfo(creds.User, creds.Password),
		nats.CustomInboxPrefix(InboxPrefix(creds.User)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s as %s: %w", url, creds.User, err)
	}
	return nc, nil
}
