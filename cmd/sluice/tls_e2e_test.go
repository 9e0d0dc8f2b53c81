package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"sluice/internal/testcert"
)

// Two nodes with --tls-cert, --tls-key and --tls-ca (issue 11, TLS): the
// join, the forwarded write and the heartbeats cross HTTPS, Raft runs over
// mutual TLS, and the MySQL wire takes TLS clients only; plaintext is
// refused on each listener.
func TestClusterTLS(t *testing.T) {
	certs := testcert.Make(t, t.TempDir())
	tlsArgs := []string{"--tls-cert", certs.Cert, "--tls-key", certs.Key, "--tls-ca", certs.CA}
	a := newNode(t)
	a.tls, a.args = certs.ClientTLS(t), append(tlsArgs, clusterArgs...)
	a.start()
	b := newNode(t)
	b.tls, b.args = certs.ClientTLS(t), append(append([]string{"--join", a.httpAddr}, tlsArgs...), clusterArgs...)
	b.start()
	b.waitFor("two live nodes", func() bool { return b.sql("SELECT COUNT(*), SUM(alive) FROM sluice.nodes") == "2\t2" })

	// A write on the follower reaches the leader over HTTPS.
	b.sql("CREATE SYNC JOB t FROM datagen ('rate'='10') TO blackhole ()")
	a.waitFor("job t on the leader", func() bool { return a.sql("SELECT COUNT(*) FROM sluice.jobs WHERE name = 't'") == "1" })

	// MySQL: a client verifying the server certificate connects; one that
	// does not ask for TLS is refused.
	host, port, _ := net.SplitHostPort(b.mysqlAddr)
	out, err := exec.Command(b.cli, "-h", host, "-P", port, "-u", "root", "--ssl-ca", certs.CA, "--ssl-verify-server-cert",
		"-N", "-B", "-e", "SHOW STATUS LIKE 'Ssl_version'").CombinedOutput()
	if err != nil {
		t.Fatalf("a verifying TLS client: %v %s", err, out)
	}
	out, err = exec.Command(b.cli, "-h", host, "-P", port, "-u", "root", "--skip-ssl", "-N", "-B", "-e", "SELECT 1").CombinedOutput()
	if err == nil {
		t.Fatalf("a plaintext MySQL client was served: %s", out)
	}
	t.Logf("plaintext MySQL client: %s", strings.TrimSpace(string(out)))

	// HTTP: plaintext gets no answer it can use.
	if resp, err := http.Get("http://" + a.httpAddr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plaintext HTTP served /healthz")
		}
	}
	// Raft: TLS with a node certificate completes a handshake; a TLS
	// client without a certificate of the cluster's CA is refused (mutual).
	good, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", a.raftA, certs.ClientTLS(t))
	if err != nil {
		t.Fatalf("Raft does not speak TLS: %v", err)
	}
	if err := good.Handshake(); err != nil {
		t.Fatalf("Raft TLS handshake with a node certificate: %v", err)
	}
	good.Close()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", a.raftA, &tls.Config{RootCAs: certs.Pool})
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3 reports a refused client certificate on the first read
		conn.Close()
	}
	if err == nil {
		t.Fatal("Raft accepted a client without a certificate")
	}
	// The node-to-node endpoints want the cluster's node token too.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(t)}}
	resp, err := c.Post("https://"+a.httpAddr+"/v1/catalog/apply", "application/octet-stream", strings.NewReader("\x02{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a forwarded write without the node token: %d", resp.StatusCode)
	}
}
