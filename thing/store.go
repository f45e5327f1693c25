package thing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Endpoint is the mqttEndpoint of an onboarding answer: where and how the
// thing connects to the API broker.
type Endpoint struct {
	InstallationID string `json:"installationID"`
	Username       string `json:"username"`
	Password       string `json:"password"`
	// MQTTTopic is the client ID on the API broker and the topic commands
	// arrive on.
	MQTTTopic string `json:"mqttTopic"`
	Host      string `json:"host"`
	PortTCP   int    `json:"portTCP"`
	PortSSL   int    `json:"portSSL"`
	PortWS    int    `json:"portWS"`
	PortWSS   int    `json:"portWSS"`
	// TTL is the endpoint's lifetime in seconds from the onboarding.
	TTL int64 `json:"ttl"`
}

// Credentials is what onboarding gives a thing, with what it takes to tell
// whether they still apply.
type Credentials struct {
	// AppID, VendorThingID and ThingID say whom the credentials were issued
	// to; a Client whose Config names another app or thing onboards again.
	AppID         string `json:"appID"`
	VendorThingID string `json:"vendorThingID,omitempty"`
	ThingID       string `json:"thingID"`
	// AccessToken is the thing's token, sent as a Bearer token with every
	// API call.
	AccessToken string   `json:"accessToken"`
	Endpoint    Endpoint `json:"mqttEndpoint"`
	// IssuedAt is when the onboarding answer arrived; the endpoint expires
	// Endpoint.TTL seconds later.
	IssuedAt time.Time `json:"issuedAt"`
}

// ExpiresAt returns when the endpoint stops working, or the zero time if its
// ttl is zero or negative (no expiry).
func (c *Credentials) ExpiresAt() time.Time {
	if c.Endpoint.TTL <= 0 {
		return time.Time{}
	}
	ttl := c.Endpoint.TTL
	if maxSec := int64(1<<63-1) / int64(time.Second); ttl > maxSec {
		ttl = maxSec
	}
	return c.IssuedAt.Add(time.Duration(ttl) * time.Second)
}

// expired reports whether the endpoint's ttl has passed at now.
func (c *Credentials) expired(now time.Time) bool {
	exp := c.ExpiresAt()
	return !exp.IsZero() && !now.Before(exp)
}

// matches reports whether c was issued for the thing cfg names.
func (c *Credentials) matches(cfg *Config) bool {
	if c == nil || c.AppID != cfg.AppID || c.Endpoint.MQTTTopic == "" {
		return false
	}
	if cfg.VendorThingID != "" {
		return c.VendorThingID == cfg.VendorThingID
	}
	return c.ThingID == cfg.ThingID
}

// Store keeps a thing's credentials between runs. Implementations must be
// safe for concurrent use.
type Store interface {
	// Load returns the stored credentials, or ErrNoCredentials.
	Load(ctx context.Context) (*Credentials, error)
	// Save replaces the stored credentials.
	Save(ctx context.Context, c *Credentials) error
}

var (
	_ Store = (*FileStore)(nil)
	_ Store = (*MemoryStore)(nil)
)

// FileStore keeps the credentials in one JSON file, readable by its owner
// only (0600). Save writes a temporary file in the same directory, syncs it
// and renames it over the old one, so that a crash leaves either the old
// credentials or the new ones, never a torn file.
type FileStore struct {
	// Path is the file. Its directory must exist.
	Path string

	mu sync.Mutex
}

// Load reads the file; a missing file is ErrNoCredentials.
func (s *FileStore) Load(_ context.Context) (*Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("load credentials %s: %w", s.Path, err)
	}
	return &c, nil
}

// Save writes the file atomically with mode 0600.
func (s *FileStore) Save(_ context.Context, c *Credentials) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := writeFileAtomic(s.Path, append(b, '\n')); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}

// writeFileAtomic writes b to a new 0600 file next to path, syncs it,
// renames it to path and syncs the directory.
func writeFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes 0600 files already; Chmod makes it explicit for
	// platforms and umasks where it would not be.
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: not every file system syncs directories
		d.Close()
	}
	return nil
}

// MemoryStore keeps the credentials in memory. The zero value is empty and
// ready for use.
type MemoryStore struct {
	mu sync.Mutex
	c  *Credentials
}

// Load returns a copy of the stored credentials, or ErrNoCredentials.
func (s *MemoryStore) Load(_ context.Context) (*Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		return nil, ErrNoCredentials
	}
	c := *s.c
	return &c, nil
}

// Save keeps a copy of c.
func (s *MemoryStore) Save(_ context.Context, c *Credentials) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cc := *c
	s.c = &cc
	return nil
}
