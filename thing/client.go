package thing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Log attribute keys.
const (
	logError     = "error"
	logThing     = "thing"
	logCommand   = "command"
	logBroker    = "broker"
	logAttempt   = "attempt"
	logExpiresAt = "expiresAt"
)

// errExpired ends a session whose endpoint ttl has passed.
var errExpired = errors.New("endpoint ttl passed")

// errUnreachable ends a session whose API broker was unreachable for
// Config.ReonboardAfter.
var errUnreachable = errors.New("api broker unreachable")

// refusedCode reports whether a CONNACK reason code (MQTT 5) says the
// credentials or the client ID will never be accepted: a retry with the
// same ones cannot succeed.
func refusedCode(code byte) bool {
	switch code {
	case 0x84, // unsupported protocol version
		0x85, // client identifier not valid
		0x86, // bad user name or password
		0x87, // not authorized
		0x8C: // bad authentication method
		return true
	}
	return false
}

// Client is a thing connected to a thingif (or Kii Cloud) server. Create it
// with NewClient; it runs until its context ends or Disconnect is called.
// Its methods are safe for concurrent use.
type Client struct {
	cfg    Config
	server *url.URL
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // goroutines other than run

	calls calls
	seen  seenIDs
	// dropAnswers makes the client ignore every API answer; tests set it
	// to see calls whose answer never comes.
	dropAnswers atomic.Bool

	queueMu sync.Mutex
	queue   [][]byte      // command payloads not yet handled
	wake    chan struct{} // a payload was queued (capacity 1)

	mu    sync.Mutex
	creds *Credentials
	cm    *autopaho.ConnectionManager // nil while not connected and subscribed
	conn  uint64                      // number of the current connection, counting every OnConnectionUp
	up    chan struct{}               // closed while connected and subscribed
	err   error                       // why the client stopped on its own
}

// NewClient validates cfg and starts a client: it returns at once, and a
// goroutine loads or obtains the credentials, connects and keeps the
// connection up until ctx ends or Disconnect is called. Use AwaitConnection
// to wait for the connection.
func NewClient(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	u, _ := parseServer(cfg.Server) // checked by Validate
	ctx, cancel := context.WithCancel(ctx)
	c := &Client{
		cfg:    cfg,
		server: u,
		log:    cfg.Logger,
		cancel: cancel,
		done:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		up:     make(chan struct{}),
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.work(ctx)
	}()
	go func() {
		defer close(c.done)
		c.run(ctx)
		cancel()
		c.wg.Wait()
	}()
	return c, nil
}

// Done returns a channel that is closed when the client has stopped and
// every goroutine it started has returned.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped on its own (a refused onboarding, for
// example), or nil while it runs or when it was stopped by Disconnect or
// its context.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Disconnect stops the client: it closes the connection, ends the command
// handler's context and waits until every goroutine of the client has
// returned, or ctx ends (then it returns ctx.Err()).
func (c *Client) Disconnect(ctx context.Context) error {
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AwaitConnection waits until the client is connected to the API broker and
// subscribed to its topic. It returns ctx.Err() if ctx ends first, and
// ErrClosed (or, with it, the reason of Err) if the client stops.
func (c *Client) AwaitConnection(ctx context.Context) error {
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		if err := c.Err(); err != nil {
			return errors.Join(ErrClosed, err)
		}
		return ErrClosed
	}
}

// Credentials returns a copy of the credentials in use, or nil before the
// first are loaded or obtained.
func (c *Client) Credentials() *Credentials {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.creds == nil {
		return nil
	}
	cc := *c.creds
	return &cc
}

// ThingID returns the thing's ID, or "" before the credentials are known.
func (c *Client) ThingID() string {
	if cr := c.Credentials(); cr != nil {
		return cr.ThingID
	}
	return ""
}

// run obtains credentials and runs sessions with them until ctx ends or a
// permanent error.
func (c *Client) run(ctx context.Context) {
	reonboard := false
	for attempt := 0; ctx.Err() == nil; {
		creds, err := c.credentials(ctx, reonboard)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if permanent(err) {
				c.log.Error("onboarding refused; stopping", logError, err)
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
			attempt++
			c.log.Warn("onboarding failed; will retry", logError, err, logAttempt, attempt)
			if !sleep(ctx, c.cfg.Backoff(attempt)) {
				return
			}
			continue
		}
		attempt = 0
		c.mu.Lock()
		c.creds = creds
		c.mu.Unlock()
		err = c.session(ctx, creds)
		if ctx.Err() != nil {
			return
		}
		c.log.Info("endpoint no longer valid; onboarding again", logError, err)
		reonboard = true
	}
}

// permanent reports whether an onboarding error will not go away by
// itself: a refused CONNECT, or a 4xx answer other than 408 and 429.
func permanent(err error) bool {
	if errors.Is(err, ErrRefused) {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.StatusCode >= 400 && e.StatusCode < 500 &&
		e.StatusCode != 408 && e.StatusCode != 429
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// credentials returns stored credentials that still apply, or onboards and
// stores the new ones. With reonboard it always onboards.
func (c *Client) credentials(ctx context.Context, reonboard bool) (*Credentials, error) {
	if !reonboard {
		cr, err := c.cfg.Store.Load(ctx)
		switch {
		case err == nil && !cr.matches(&c.cfg):
			c.log.Info("stored credentials are for another thing; onboarding")
		case err == nil && cr.expired(time.Now()):
			c.log.Info("stored endpoint expired; onboarding", logExpiresAt, cr.ExpiresAt())
		case err == nil:
			return cr, nil
		case !errors.Is(err, ErrNoCredentials):
			c.log.Warn("cannot load credentials; onboarding", logError, err)
		}
	}
	octx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	cr, err := onboard(octx, &c.cfg)
	if err != nil {
		return nil, err
	}
	c.log.Info("onboarded", logThing, cr.ThingID, logExpiresAt, cr.ExpiresAt())
	if err := c.cfg.Store.Save(ctx, cr); err != nil {
		// The credentials work; the next start will onboard again.
		c.log.Error("cannot save credentials", logError, err)
	}
	return cr, nil
}

// session keeps a connection to the API broker up with creds until ctx
// ends (nil) or the credentials stop working (the reason).
func (c *Client) session(ctx context.Context, creds *Credentials) error {
	u, err := apiURL(c.server, creds.Endpoint)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	end := make(chan error, 1)
	finish := func(err error) {
		select {
		case end <- err:
		default:
		}
	}
	topic := creds.Endpoint.MQTTTopic
	log := c.log.With(logBroker, u.Redacted())
	// downSince is when the session last had no connection (UnixNano; 0
	// while connected), for ReonboardAfter.
	var downSince atomic.Int64
	downSince.Store(time.Now().UnixNano())
	cm, err := autopaho.NewConnection(sctx, autopaho.ClientConfig{
		ServerUrls:       []*url.URL{u},
		TlsCfg:           c.cfg.TLSConfig,
		KeepAlive:        uint16(c.cfg.KeepAlive / time.Second),
		ConnectTimeout:   c.cfg.ConnectTimeout,
		ReconnectBackoff: c.cfg.Backoff,
		ConnectUsername:  creds.Endpoint.Username,
		ConnectPassword:  []byte(creds.Endpoint.Password),
		ConnectPacketBuilder: func(p *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if creds.expired(time.Now()) {
				finish(errExpired)
				return nil, errExpired
			}
			p.CleanStart = true // thingif keeps no sessions; pending commands are in its store
			return p, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			downSince.Store(0)
			c.mu.Lock()
			c.conn++
			n := c.conn
			c.mu.Unlock()
			log.Debug("connected; subscribing")
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.subscribe(sctx, cm, n, topic, finish, log)
			}()
		},
		OnConnectionDown: func() bool {
			downSince.Store(time.Now().UnixNano())
			c.down()
			log.Info("connection lost; reconnecting")
			if creds.expired(time.Now()) {
				finish(errExpired)
				return false
			}
			return true
		},
		OnConnectError: func(err error) {
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) && refusedCode(ce.ReasonCode) {
				finish(err)
				return
			}
			if since := downSince.Load(); ce == nil && since != 0 && c.cfg.ReonboardAfter > 0 &&
				time.Since(time.Unix(0, since)) >= c.cfg.ReonboardAfter {
				log.Warn("api broker unreachable; onboarding again", logError, err, "for", c.cfg.ReonboardAfter)
				finish(errUnreachable)
				return
			}
			if sctx.Err() == nil {
				log.Warn("cannot connect", logError, err)
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: topic,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				if pr.Packet.Topic == topic {
					c.enqueue(pr.Packet.Payload)
					return true, nil
				}
				if c.dropAnswers.Load() {
					return true, nil
				}
				var corr []byte
				if pr.Packet.Properties != nil {
					corr = pr.Packet.Properties.CorrelationData
				}
				if !c.calls.deliver(pr.Packet.Payload, corr) {
					log.Debug("unmatched message", "topic", pr.Packet.Topic)
				}
				return true, nil
			}},
			OnClientError: func(err error) { log.Debug("connection error", logError, err) },
		},
	})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		err = nil
	case err = <-end:
	}
	cancel()
	<-cm.Done()
	c.down()
	return err
}

// subscribe subscribes connection number n to topic and marks the client
// up; a refused subscription ends the session.
func (c *Client) subscribe(ctx context.Context, cm *autopaho.ConnectionManager, n uint64, topic string, finish func(error), log *slog.Logger) {
	sctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	ack, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
	if err != nil {
		if ack != nil && len(ack.Reasons) == 1 && ack.Reasons[0] >= 0x80 {
			finish(fmt.Errorf("subscribe refused (reason 0x%02x)", ack.Reasons[0]))
			return
		}
		// The connection dropped meanwhile; autopaho reconnects.
		log.Debug("subscribe failed", logError, err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != n || c.cm != nil {
		return // connection n is gone already
	}
	c.cm = cm
	close(c.up)
	log.Info("connected")
}

// down marks the client disconnected and fails the calls that were sent on
// the lost connection.
func (c *Client) down() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cm != nil {
		c.cm = nil
		c.up = make(chan struct{})
	}
	c.calls.lose(c.conn)
	c.conn++ // a subscription still running for the lost connection must not mark it up
}
