package cluster

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sluice/catalog"
)

// KeyFile is where a node keeps the cluster key in its data directory.
const KeyFile = "cluster.key"

// LoadKey reads the cluster key: from file when given (--secret-key-file),
// else from the data directory; nil when there is none yet. A key file
// holds the key as 64 hex digits or base64 (a trailing newline is fine).
func LoadKey(dataDir, file string) ([]byte, error) {
	path := file
	if path == "" {
		path = filepath.Join(dataDir, KeyFile)
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && file == "" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	if file != "" {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("cluster key %s is readable by others (mode %o): chmod 600 it", path, st.Mode().Perm())
		}
	}
	key, err := parseKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("cluster key %s: %w", path, err)
	}
	return key, nil
}

func parseKey(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == catalog.KeySize {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == catalog.KeySize {
		return b, nil
	}
	return nil, fmt.Errorf("a cluster key is %d bytes written as hex (%d digits) or base64", catalog.KeySize, 2*catalog.KeySize)
}

// SaveKey writes the key into the data directory, readable by its owner only.
func SaveKey(dataDir string, key []byte) error {
	path := filepath.Join(dataDir, KeyFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("cluster key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cluster key: %w", err)
	}
	return nil
}
