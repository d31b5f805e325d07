package saml

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// keyName is where the generated key pair of provider name lives in the
// KeyStore.
func keyName(name string) string { return "mcpauth/saml/" + name + "/sp.pem" }

// spKeyPair returns the configured key pair, or the one persisted in the
// key store, generating and saving it on first use.
func spKeyPair(ctx context.Context, c *Config) (crypto.Signer, *x509.Certificate, error) {
	if len(c.SPKeyPEM) > 0 {
		return parseKeyPair(append(append([]byte{}, c.SPCertificatePEM...), c.SPKeyPEM...))
	}
	blob, err := c.KeyStore.Load(ctx, keyName(c.Name))
	switch {
	case err == nil:
		return parseKeyPair(blob)
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, storage.ErrNotFound):
		return nil, nil, fmt.Errorf("saml: %s: loading the SP key: %w", c.Name, err)
	}
	blob, err = generateKeyPair(c.EntityID, c.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("saml: %s: generating the SP key: %w", c.Name, err)
	}
	if err := c.KeyStore.Store(ctx, keyName(c.Name), blob); err != nil {
		return nil, nil, fmt.Errorf("saml: %s: saving the SP key: %w", c.Name, err)
	}
	// Another instance may have stored its own key at the same time: use
	// whatever the store holds now, so all instances converge.
	if again, err := c.KeyStore.Load(ctx, keyName(c.Name)); err == nil {
		blob = again
	}
	// A lost storage means a new key, and every login then fails at the
	// IdP until it has our new metadata: say so loudly.
	c.Logger.Warn("saml: generated a new SP key pair; the IdP must get our new metadata or every SAML login fails (set sp_cert_file and sp_key_file to keep the key outside the storage)",
		"provider", c.Name, "metadata", c.BaseURL+"/metadata")
	return parseKeyPair(blob)
}

// generateKeyPair makes an RSA 2048 key and a self-signed certificate (SAML
// uses the certificate only as a key container) as PEM.
func generateKeyPair(entityID string, now time.Time) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	cn := entityID
	if u, err := url.Parse(entityID); err == nil && u.Host != "" {
		cn = u.Hostname()
	}
	if len(cn) > 64 {
		cn = cn[:64]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})...), nil
}

// parseKeyPair reads a certificate and its private key from PEM blocks.
func parseKeyPair(blob []byte) (crypto.Signer, *x509.Certificate, error) {
	var cert *x509.Certificate
	var key crypto.Signer
	for {
		var b *pem.Block
		b, blob = pem.Decode(blob)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			if cert == nil {
				c, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					return nil, nil, fmt.Errorf("saml: SP certificate: %w", err)
				}
				cert = c
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			k, err := parsePrivateKey(b)
			if err != nil {
				return nil, nil, err
			}
			key = k
		}
	}
	if cert == nil || key == nil {
		return nil, nil, errors.New("saml: SP key pair: need a CERTIFICATE and a PRIVATE KEY PEM block")
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		// crewjam/saml decrypts assertions with RSA only.
		return nil, nil, errors.New("saml: SP key must be RSA")
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, nil, errors.New("saml: SP certificate does not match the key")
	}
	return key, cert, nil
}

func parsePrivateKey(b *pem.Block) (crypto.Signer, error) {
	switch b.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(b.Bytes)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("saml: SP key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("saml: SP key: not a signing key")
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// DirKeyStore is a KeyStore on a local directory (files mode 0600), for use
// outside Caddy. Keys are relative paths below the directory.
type DirKeyStore string

func (d DirKeyStore) path(key string) (string, error) {
	clean := filepath.Clean("/" + key)
	if strings.Contains(key, "..") || clean == "/" {
		return "", fmt.Errorf("saml: invalid key name %q", key)
	}
	return filepath.Join(string(d), clean), nil
}

// Load implements KeyStore.
func (d DirKeyStore) Load(_ context.Context, key string) ([]byte, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// Store implements KeyStore. The file is written atomically.
func (d DirKeyStore) Store(_ context.Context, key string, value []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(value); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}
