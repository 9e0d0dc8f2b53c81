package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// TLSFiles names a node's certificate, key and (optional) cluster CA.
type TLSFiles struct {
	Cert, Key, CA string
}

// TLS is a node's TLS configuration for its three listeners and for the
// calls it makes to other nodes.
type TLS struct {
	MySQL  *tls.Config // users' clients: server certificate only
	HTTP   *tls.Config // users and nodes: a client certificate is checked when given
	Raft   *tls.Config // nodes only: a client certificate is required with a CA
	Client *tls.Config // this node calling others (HTTP and Raft)
}

// Load reads the files; nil when no certificate is configured.
func (f TLSFiles) Load() (*TLS, error) {
	if f.Cert == "" && f.Key == "" {
		if f.CA != "" {
			return nil, errors.New("--tls-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("TLS needs both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	t := &TLS{MySQL: base.Clone(), HTTP: base.Clone(), Raft: base.Clone(), Client: base.Clone()}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA %s holds no PEM certificate", f.CA)
		}
		t.Raft.ClientCAs, t.Raft.ClientAuth = pool, tls.RequireAndVerifyClientCert
		t.HTTP.ClientCAs, t.HTTP.ClientAuth = pool, tls.VerifyClientCertIfGiven
		t.Client.RootCAs = pool
	}
	return t, nil
}

// IsLoopback reports whether addr's host is a loopback address.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
