package starrocks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// client speaks StarRocks' HTTP loading protocol: Stream Load and the
// Stream Load transaction API, against a list of FEs (failover in order).
type client struct {
	fes            []string
	user, password string
	http           *http.Client
	retries        int
	backoff        time.Duration
}

func newClient(fes []string, user, password string, timeout time.Duration, retries int, backoff time.Duration) *client {
	return &client{fes: fes, user: user, password: password, retries: retries, backoff: backoff, http: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{ExpectContinueTimeout: time.Second, MaxIdleConnsPerHost: 4,
			ResponseHeaderTimeout: timeout},
		// The FE answers 307 with a BE's address. Go drops Authorization
		// when a redirect changes host; the BE needs it (401 otherwise).
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if a := via[0].Header.Get("Authorization"); a != "" {
				req.Header.Set("Authorization", a)
			}
			return nil
		},
	}}
}

// response is the JSON StarRocks answers loads and transaction calls with
// (HTTP 200 even when the load failed: Status says).
type response struct {
	Status            string `json:"Status"`
	Message           string `json:"Message"`
	Label             string `json:"Label"`
	ExistingJobStatus string `json:"ExistingJobStatus"`
	ErrorURL          string `json:"ErrorURL"`
	NumberLoadedRows  int64  `json:"NumberLoadedRows"`
	State             string `json:"state"` // get_load_state
}

// errTransient marks failures worth retrying with the same label.
var errTransient = errors.New("transient")

// do sends one request to the first FE that answers, following the 307 to
// a BE with credentials, and decodes the JSON answer.
func (c *client) do(ctx context.Context, method, path string, hdr map[string]string, body []byte) (response, error) {
	var last error
	for _, fe := range c.fes {
		req, err := http.NewRequestWithContext(ctx, method, "http://"+fe+path, bytes.NewReader(body)) // bytes.Reader: the 307 can resend it
		if err != nil {
			return response{}, err
		}
		req.SetBasicAuth(c.user, c.password)
		req.Header.Set("Expect", "100-continue")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			last = fmt.Errorf("%w: %s %s: %v", errTransient, method, fe, err)
			continue // the next FE
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case err != nil:
			last = fmt.Errorf("%w: reading the answer of %s: %v", errTransient, fe, err)
			continue
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return response{}, fmt.Errorf("StarRocks refused user %q (HTTP %d): check user and password, and that the user has INSERT on the table", c.user, resp.StatusCode)
		case resp.StatusCode == http.StatusTemporaryRedirect:
			return response{}, fmt.Errorf("StarRocks %s answered 307 that could not be followed", fe)
		case resp.StatusCode >= 500:
			last = fmt.Errorf("%w: %s answered HTTP %d: %s", errTransient, fe, resp.StatusCode, strings.TrimSpace(string(data)))
			continue
		case resp.StatusCode != http.StatusOK:
			return response{}, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
		}
		var r response
		if err := json.Unmarshal(data, &r); err != nil {
			return response{}, fmt.Errorf("%w: %s answered %q", errTransient, fe, data)
		}
		return r, nil
	}
	return response{}, last
}

// retry runs f until it succeeds, fails for good, or retries run out.
func (c *client) retry(ctx context.Context, f func() error) error {
	var err error
	for i := 0; i <= c.retries; i++ {
		if i > 0 {
			select {
			case <-time.After(c.backoff * time.Duration(1<<(i-1))):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err = f(); err == nil || !errors.Is(err, errTransient) {
			return err
		}
	}
	return fmt.Errorf("after %d retries: %w", c.retries, err)
}

// loadState asks the FE for a label's state: PREPARE, PREPARED, COMMITTED,
// VISIBLE, ABORTED or UNKNOWN.
func (c *client) loadState(ctx context.Context, db, label string) (string, error) {
	r, err := c.do(ctx, http.MethodGet, "/api/"+db+"/get_load_state?label="+label, nil, nil)
	if err != nil {
		return "", err
	}
	return strings.ToUpper(r.State), nil
}

// errorText fetches a failed load's ErrorURL, for the message.
func (c *client) errorText(ctx context.Context, url string) string {
	if url == "" {
		return ""
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ""
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	return strings.TrimSpace(string(data))
}
