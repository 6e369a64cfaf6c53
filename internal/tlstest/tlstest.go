// Package tlstest makes a certificate authority and certificates signed by
// it, written as PEM files, for tests of TLS: the API's own, and the TLS
// listeners of the Postgres, Redis and RabbitMQ servers tests start. It
// also makes the bad ones a client must refuse: expired, for another host,
// and signed by a CA nobody trusts.
//
//	ca, err := tlstest.NewCA(dir)
//	server, err := ca.Issue(dir, "server", tlstest.Leaf{Hosts: tlstest.Localhost})
//	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Localhost are the names a certificate for a local test server carries.
var Localhost = []string{"localhost", "127.0.0.1", "::1"}

// CA is a certificate authority whose certificate is in CertFile.
type CA struct {
	Cert     *x509.Certificate
	CertFile string
	key      *ecdsa.PrivateKey
}

// Leaf says what certificate Issue makes.
type Leaf struct {
	// Hosts are DNS names and IP addresses the certificate is valid for.
	Hosts []string
	// Client makes a client certificate (for mutual TLS) instead of a
	// server certificate.
	Client bool
	// Expired makes a certificate whose validity ended an hour ago.
	Expired bool
}

// Pair is a certificate and its key, in files and parsed.
type Pair struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// NewCA makes a CA and writes its certificate to dir/ca.pem.
func NewCA(dir string) (*CA, error) {
	return newCA(dir, "ca")
}

// NewUntrustedCA is NewCA under another file name, dir/name.pem: a CA
// that tests trust nowhere, for certificates a client must refuse.
func NewUntrustedCA(dir, name string) (*CA, error) {
	return newCA(dir, name)
}

func newCA(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "viswals test CA " + name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: cert, CertFile: filepath.Join(dir, name+".pem"), key: key}
	if err := writePEM(ca.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// Pool is a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue makes a certificate signed by the CA and writes it to
// dir/name.pem and its key to dir/name.key (mode 0600).
func (ca *CA) Issue(dir, name string, l Leaf) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	notBefore, notAfter := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if l.Expired {
		notBefore, notAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	}
	usage := x509.ExtKeyUsageServerAuth
	if l.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, h := range l.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return Pair{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	p := Pair{CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+".key")}
	if err := writePEM(p.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return Pair{}, err
	}
	if err := writePEM(p.KeyFile, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return Pair{}, err
	}
	p.TLS, err = tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return Pair{}, fmt.Errorf("load the pair just written: %w", err)
	}
	return p, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// Install makes p's files the ones at certFile and keyFile, each replaced
// whole (written aside, then renamed), as renewal tools do; a server
// polling them never reads half a file.
func Install(p Pair, certFile, keyFile string) error {
	for _, f := range [][2]string{{p.CertFile, certFile}, {p.KeyFile, keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			return err
		}
		if err := os.WriteFile(f[1]+".new", b, 0o600); err != nil {
			return err
		}
		if err := os.Rename(f[1]+".new", f[1]); err != nil {
			return err
		}
	}
	return nil
}

// Handshake connects to the TLS server at addr with cfg, offering HTTP/2,
// and returns the server's verdict. In TLS 1.3 the server judges a client
// certificate after the client's side of the handshake is done, so its
// refusal arrives with the first read; an HTTP/2 server that accepted
// sends its settings first.
func Handshake(addr string, cfg *tls.Config) error {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	// Generous bounds: a starved machine is slow to give its verdict.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Minute}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}
