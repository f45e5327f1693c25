package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// appClient is the REST client of the app-side subcommands. It reads its
// settings from flags, falling back to THINGIF_SERVER, THINGIF_APP_ID,
// THINGIF_APP_KEY and THINGIF_TOKEN.
type appClient struct {
	server, app, key, token string
	json                    bool
	stdout                  io.Writer
	http                    *http.Client
}

// newAppClient adds the client's flags to fs. Their defaults come from
// the environment; the help names the variables, never their values.
func newAppClient(fs *flagSet) *appClient {
	c := &appClient{}
	fs.envString(&c.server, "server", "THINGIF_SERVER", "http://localhost:8080", "server base `URL`")
	fs.envString(&c.app, "app", "THINGIF_APP_ID", "", "app `ID`")
	fs.envString(&c.key, "key", "THINGIF_APP_KEY", "", "app `key`, for an app admin token")
	fs.secretFile(&c.key, "key", "app key")
	fs.envString(&c.token, "token", "THINGIF_TOKEN", "", "bearer `token` to use instead of the app key")
	fs.BoolVar(&c.json, "json", false, "print the server's JSON answer")
	return c
}

// apiError is an error answer of the server.
type apiError struct {
	Status    int
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.ErrorCode, e.Message)
}

// ensureToken gets an app admin token with the app key unless a token was
// given.
func (c *appClient) ensureToken(ctx context.Context) error {
	if c.app == "" {
		return usagef("--app (or THINGIF_APP_ID) is required")
	}
	if c.token != "" {
		return nil
	}
	if c.key == "" {
		return usagef("--key, --key-file or --token (or THINGIF_APP_KEY / THINGIF_TOKEN) is required")
	}
	body, _ := json.Marshal(map[string]string{"grant_type": "client_credentials", "client_id": c.app, "client_secret": c.key})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := c.do(ctx, "POST", "/api/apps/"+c.app+"/oauth2/token", "application/json", body, &tok, false); err != nil {
		return fmt.Errorf("app token: %w", err)
	}
	c.token = tok.AccessToken
	return nil
}

// call sends a request with the token and decodes the JSON answer into out.
// It returns the raw answer.
func (c *appClient) call(ctx context.Context, method, path, contentType string, body []byte, out any) ([]byte, error) {
	if err := c.ensureToken(ctx); err != nil {
		return nil, err
	}
	return c.do(ctx, method, path, contentType, body, out, true)
}

func (c *appClient) do(ctx context.Context, method, path, contentType string, body []byte, out any, auth bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.server, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := c.http
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 300 {
		e := &apiError{Status: res.StatusCode}
		if json.Unmarshal(b, e) != nil {
			e.Message = strings.TrimSpace(string(b))
		}
		return nil, e
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("decode answer: %w", err)
		}
	}
	return b, nil
}

// printJSON prints the raw answer when --json is set and reports whether it
// did.
func (c *appClient) printJSON(raw []byte) bool {
	if !c.json {
		return false
	}
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		buf.Reset()
		buf.Write(raw)
	}
	fmt.Fprintln(c.stdout, buf.String())
	return true
}
