package thing

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// seenLimit is how many command IDs a client remembers to drop repeats.
const seenLimit = 1024

// seenIDs remembers the last seenLimit command IDs. It is used by the
// command goroutine only.
type seenIDs struct {
	set  map[string]struct{}
	ring []string
	next int
}

// add records id and reports whether it was new.
func (s *seenIDs) add(id string) bool {
	if _, ok := s.set[id]; ok {
		return false
	}
	if s.set == nil {
		s.set = make(map[string]struct{}, seenLimit)
		s.ring = make([]string, seenLimit)
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.set, old)
	}
	s.ring[s.next] = id
	s.next = (s.next + 1) % seenLimit
	s.set[id] = struct{}{}
	return true
}

// enqueue queues a command payload for the command goroutine. It never
// blocks: it runs on paho's receiving goroutine.
func (c *Client) enqueue(payload []byte) {
	c.queueMu.Lock()
	c.queue = append(c.queue, payload)
	c.queueMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// work handles queued commands one at a time until ctx ends.
func (c *Client) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		for {
			c.queueMu.Lock()
			if len(c.queue) == 0 {
				c.queue = nil
				c.queueMu.Unlock()
				break
			}
			p := c.queue[0]
			c.queue = c.queue[1:]
			c.queueMu.Unlock()
			c.handle(ctx, p)
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// handle parses one command, runs the handler and sends the results.
func (c *Client) handle(ctx context.Context, payload []byte) {
	cmd, err := ParseCommand(payload)
	if err != nil {
		c.log.Warn("dropping malformed command", logError, err)
		return
	}
	log := c.log.With(logCommand, cmd.ID)
	if !c.seen.add(cmd.ID) {
		log.Info("dropping repeated command")
		return
	}
	var results []Result
	if c.cfg.OnCommand != nil {
		results = c.cfg.OnCommand(ctx, cmd)
	} else {
		results = make([]Result, len(cmd.Actions))
		for i := range results {
			results[i].ErrorMessage = "no command handler"
		}
	}
	body, err := actionResults(cmd, results)
	if err != nil {
		log.Error("cannot encode action results", logError, err)
		return
	}
	c.sendResults(ctx, cmd, body, log)
}

// sendResults sends a command's action results until the server takes
// them, refuses them for good, or ctx ends.
func (c *Client) sendResults(ctx context.Context, cmd *Command, body []byte, log *slog.Logger) {
	h := http.Header{"Content-Type": {"application/json"}}
	for attempt := 1; ; attempt++ {
		path := func(thingID string) string {
			return "targets/thing:" + thingID + "/commands/" + cmd.ID + "/action-results"
		}
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
		_, err := c.do(cctx, http.MethodPut, path, h, body)
		cancel()
		if err == nil {
			log.Info("action results sent")
			return
		}
		if ctx.Err() != nil {
			return
		}
		var e *Error
		if errors.As(err, &e) && e.StatusCode < 500 && e.StatusCode != 408 && e.StatusCode != 429 {
			log.Error("action results refused", logError, err)
			return
		}
		log.Warn("cannot send action results; will retry", logError, err, logAttempt, attempt)
		if !sleep(ctx, c.cfg.Backoff(attempt)) {
			return
		}
	}
}
