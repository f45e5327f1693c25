package server

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

// TestTLSListeners: every TLS listener speaks TLS 1.2 or later with AEAD
// cipher suites only, and serves a renewed certificate after
// ReloadCertificate (what SIGHUP calls) without a restart.
func TestTLSListeners(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := selfSigned(filepath.Join(dir, "first"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	s := startServer(t, cfg)
	names := []string{"onboard-tls", "onboard-wss", "mqtt-tls", "mqtt-wss", "https"}

	handshake := func(name string, conf *tls.Config) (*tls.ConnectionState, error) {
		c, err := tls.Dial("tcp", s.Addr(name).String(), conf)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.ConnectionState()
		return &st, nil
	}
	serial := func(name string) string {
		st, err := handshake(name, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return st.PeerCertificates[0].SerialNumber.String()
	}
	before := serial("https")
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
				if _, err := handshake(name, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}); err == nil {
					t.Errorf("TLS version %#x accepted", v)
				}
			}
			cbc := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
			if _, err := handshake(name, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: cbc}); err == nil {
				t.Error("a CBC or non-ECDHE cipher suite was accepted")
			}
			st, err := handshake(name, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatalf("TLS 1.2: %v", err)
			}
			if st.Version != tls.VersionTLS12 {
				t.Errorf("version %#x", st.Version)
			}
			st, err = handshake(name, &tls.Config{InsecureSkipVerify: true})
			if err != nil || st.Version != tls.VersionTLS13 {
				t.Errorf("TLS 1.3: %v", err)
			}
			if got := st.PeerCertificates[0].SerialNumber.String(); got != before {
				t.Errorf("serial %s, want %s", got, before)
			}
		})
	}

	// Renew: a new certificate written over the files, then reloaded.
	newCert, newKey, err := selfSigned(filepath.Join(dir, "second"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{newCert: certFile, newKey: keyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := serial("https"); got != before {
		t.Fatal("certificate changed before the reload")
	}
	if err := s.ReloadCertificate(); err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(newCert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	for _, name := range names {
		if got := serial(name); got == before {
			t.Errorf("%s still serves the old certificate", name)
		}
		if _, err := handshake(name, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
			t.Errorf("%s: the renewed certificate does not verify: %v", name, err)
		}
	}
	// A broken file keeps the current certificate.
	if err := writeFile(certFile, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadCertificate(); err == nil {
		t.Fatal("reloading a broken certificate succeeded")
	}
	if _, err := handshake("https", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}
