package catalog

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a cluster secret key (AES-256).
const KeySize = 32

// sealedPrefix starts every sealed value: sealed:v1:<key id>:<base64>.
const sealedPrefix = "sealed:v1:"

// ErrWrongKey: a sealed value was sealed with another cluster's key.
var ErrWrongKey = errors.New("secret sealed with a different cluster key")

// Keyring seals secret option values (passwords, tokens) with the cluster's
// AES-256-GCM key before they enter the Raft log, and opens them for the
// executor. The key never enters the log: each node keeps it in its data
// directory (mode 0600) or is given it, and a joining node receives it in
// the answer to its join request.
type Keyring struct {
	id   string
	key  []byte
	aead cipher.AEAD
}

// GenerateKey returns a new random cluster key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("catalog: generate key: %w", err)
	}
	return k, nil
}

// NewKeyring wraps a cluster key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("catalog: a cluster key is %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("sluice key id\x00"), key...))
	return &Keyring{id: hex.EncodeToString(sum[:4]), key: append([]byte(nil), key...), aead: aead}, nil
}

// ID names the key without revealing it (in sealed values and logs).
func (k *Keyring) ID() string { return k.id }

// Key returns the raw key (for handing it to a joining node).
func (k *Keyring) Key() []byte { return append([]byte(nil), k.key...) }

// Token is the credential nodes of one cluster present to each other's
// HTTP endpoints (forwarded writes, heartbeats): derived from the key, so
// only a node that holds the key has it.
func (k *Keyring) Token() string {
	sum := sha256.Sum256(append([]byte("sluice node token\x00"), k.key...))
	return hex.EncodeToString(sum[:])
}

// IsSealed reports whether v is a sealed value.
func IsSealed(v string) bool { return strings.HasPrefix(v, sealedPrefix) }

// Seal encrypts plain, bound to name (the option it belongs to).
func (k *Keyring) Seal(name, plain string) (string, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("catalog: seal: %w", err)
	}
	ct := k.aead.Seal(nonce, nonce, []byte(plain), []byte(name))
	return sealedPrefix + k.id + ":" + base64.RawStdEncoding.EncodeToString(ct), nil
}

// Open decrypts a sealed value of option name; a value that is not sealed
// (written before secrets were sealed) is returned as it is.
func (k *Keyring) Open(name, v string) (string, error) {
	rest, ok := strings.CutPrefix(v, sealedPrefix)
	if !ok {
		return v, nil
	}
	id, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("catalog: option %s: malformed sealed value", name)
	}
	if k == nil {
		return "", fmt.Errorf("catalog: option %s is sealed with key %s, and this node has no cluster key", name, id)
	}
	if id != k.id {
		return "", fmt.Errorf("%w: option %s is sealed with key %s, this node holds key %s", ErrWrongKey, name, id, k.id)
	}
	ct, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(ct) < k.aead.NonceSize() {
		return "", fmt.Errorf("catalog: option %s: malformed sealed value", name)
	}
	plain, err := k.aead.Open(nil, ct[:k.aead.NonceSize()], ct[k.aead.NonceSize():], []byte(name))
	if err != nil {
		return "", fmt.Errorf("catalog: option %s: sealed value does not open (corrupt, or another key): %w", name, err)
	}
	return string(plain), nil
}

// sealRef returns ref with every secret option sealed (a copy: the
// caller's maps are not touched).
func (k *Keyring) sealRef(ref ConnectorRef, secret func(connector, option string) bool) (ConnectorRef, error) {
	out := ConnectorRef{Connector: ref.Connector, Options: make(map[string]string, len(ref.Options))}
	for name, v := range ref.Options {
		if secret(ref.Connector, name) && !IsSealed(v) {
			s, err := k.Seal(name, v)
			if err != nil {
				return ref, err
			}
			v = s
		}
		out.Options[name] = v
	}
	return out, nil
}

// SealSpec seals the secret options of every connector of a spec.
func (k *Keyring) SealSpec(spec JobSpec, secret func(connector, option string) bool) (JobSpec, error) {
	var err error
	out := spec
	if out.Source, err = k.sealRef(spec.Source, secret); err != nil {
		return spec, err
	}
	if out.Sink, err = k.sealRef(spec.Sink, secret); err != nil {
		return spec, err
	}
	out.Transforms = make([]ConnectorRef, len(spec.Transforms))
	for i, t := range spec.Transforms {
		if out.Transforms[i], err = k.sealRef(t, secret); err != nil {
			return spec, err
		}
	}
	if spec.Transforms == nil {
		out.Transforms = nil
	}
	return out, nil
}

// OpenOptions returns a connector's options with sealed values opened.
// k may be nil (no key): unsealed values pass, sealed ones fail.
func (k *Keyring) OpenOptions(opts map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(opts))
	for name, v := range opts {
		plain, err := k.Open(name, v)
		if err != nil {
			return nil, err
		}
		out[name] = plain
	}
	return out, nil
}
