package raftstore

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStream is a raft.StreamLayer over TLS: the listener serves with the
// node's certificate (requiring a client certificate from the cluster's
// CA when mutual TLS is configured), and Dial connects as a client.
type tlsStream struct {
	net.Listener
	adv    net.Addr
	client *tls.Config
}

func newTLSStream(bind string, adv net.Addr, server, client *tls.Config) (*tlsStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &tlsStream{Listener: tls.NewListener(ln, server), adv: adv, client: client}, nil
}

func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(address), s.client)
}

// Addr is the advertised address (the one other nodes dial).
func (s *tlsStream) Addr() net.Addr { return s.adv }
