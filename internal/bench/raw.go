package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// rawClients connects k plain clients to the broker, each subscribed at
// QoS 1 to its own topic prefix+i.
func (r *run) rawClients(ctx context.Context, k int, prefix string) ([]*conn, error) {
	things := make([]Thing, k)
	for i := range things {
		things[i] = Thing{Topic: fmt.Sprintf("%s%d", prefix, i)}
	}
	saved := r.cfg.MQTT
	r.cfg.MQTT = r.cfg.Broker
	defer func() { r.cfg.MQTT = saved }()
	return r.connThings(ctx, things, new(latencies))
}

// pubsub: K clients on unique topics; at Rate messages per second in all,
// client i publishes at QoS 1 to client i+1's topic. One hop, publisher to
// subscriber, measured from the time each message was due.
func (r *run) pubsub(ctx context.Context, res *Result) error {
	k, n := r.cfg.K, int(r.cfg.Rate*r.cfg.Duration.Seconds())
	res.Params["K"], res.Params["rate"], res.Params["duration"], res.Params["messages"] = k, r.cfg.Rate, r.cfg.Duration.String(), n
	res.Params["qos"], res.Params["payload"] = 1, r.cfg.PayloadSize
	prefix := fmt.Sprintf("bench/%d/", r.id)
	conns, err := r.rawClients(ctx, k, prefix)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	start := time.Now()
	lat := new(latencies)
	var got atomic.Int64
	var last atomic.Int64
	all := make(chan struct{})
	var readers sync.WaitGroup
	for _, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			_ = c.readLoop(func(_ string, p []byte) {
				if len(p) < 8 {
					return
				}
				now := time.Since(start)
				lat.add(now - time.Duration(binary.BigEndian.Uint64(p)))
				last.Store(int64(now))
				if got.Add(1) == int64(n) {
					close(all)
				}
			})
		}()
	}
	topics := make([]string, k)
	for i := range topics {
		topics[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	m := r.startMeasure()
	measureStart := time.Since(start)
	bar := startProgress(r.cfg.Progress, "pubsub", n)
	var failed atomic.Int64
	pace(ctx.Done(), r.cfg.Rate, n, func(i int, due time.Time) {
		p := make([]byte, max(8, r.cfg.PayloadSize))
		binary.BigEndian.PutUint64(p, uint64(due.Sub(start)))
		if conns[i%k].publish(topics[(i+1)%k], 1, p) != nil {
			failed.Add(1)
		}
		bar.add(1)
	})
	bar.end()
	select {
	case <-all:
	case <-time.After(r.cfg.Timeout):
	case <-ctx.Done():
	}
	el := time.Duration(last.Load()) - measureStart
	m.end(res)
	closeAll(conns)
	readers.Wait()
	res.Metrics = append([]Metric{
		{"messages sent", float64(n), ""},
		{"messages received", float64(got.Load()), ""},
		{"publish errors", float64(failed.Load()), ""},
		{"delivered/s", float64(got.Load()) / max(el.Seconds(), 1e-9), "/s"},
	}, res.Metrics...)
	res.addLatencies("hop due→received", lat)
	return nil
}

// echo: K requesters, each subscribed to its reply topic, publish a request
// at QoS 1 and send the next as soon as the reply comes; one responder,
// subscribed to every request topic with a wildcard, publishes each request
// back at QoS 1 to its requester's reply topic. Two hops through the
// broker per round trip.
func (r *run) echo(ctx context.Context, res *Result) error {
	k := r.cfg.K
	res.Params["K"], res.Params["duration"], res.Params["qos"], res.Params["payload"] = k, r.cfg.Duration.String(), 1, r.cfg.PayloadSize
	base := fmt.Sprintf("bench/%d/", r.id)
	conns, err := r.rawClients(ctx, k, base+"rep/")
	if err != nil {
		return err
	}
	defer closeAll(conns)
	responder, err := r.dial.dial(ctx, k, r.cfg.Broker, fmt.Sprintf("b%d-responder", r.id), "", "")
	if err != nil {
		return err
	}
	defer responder.close()
	if err := responder.subscribe(base+"req/+", 1, r.cfg.Timeout); err != nil {
		return err
	}
	var respWG sync.WaitGroup
	respWG.Add(1)
	go func() {
		defer respWG.Done()
		_ = responder.readLoop(func(topic string, p []byte) {
			_ = responder.publish(base+"rep/"+strings.TrimPrefix(topic, base+"req/"), 1, p)
		})
	}()

	lat := new(latencies)
	m := r.startMeasure()
	deadline := m.start.Add(r.cfg.Duration)
	bar := startProgress(r.cfg.Progress, "echo", 0)
	watchdog := time.AfterFunc(r.cfg.Duration+r.cfg.Timeout, func() { closeAll(conns) })
	defer watchdog.Stop()
	payload := make([]byte, r.cfg.PayloadSize)
	var wg sync.WaitGroup
	for i, c := range conns {
		topic := fmt.Sprintf("%sreq/%d", base, i)
		var sent time.Time
		send := func() error {
			sent = time.Now()
			return c.publish(topic, 1, payload)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.readLoop(func(string, []byte) {
				now := time.Now()
				lat.add(now.Sub(sent))
				bar.add(1)
				if now.Before(deadline) && ctx.Err() == nil && send() == nil {
					return
				}
				c.close()
			})
		}()
		if err := send(); err != nil {
			return err
		}
	}
	wg.Wait()
	bar.end()
	el := m.end(res)
	responder.close()
	respWG.Wait()
	res.Metrics = append([]Metric{
		{"round trips/s", float64(lat.count()) / el.Seconds(), "/s"},
	}, res.Metrics...)
	res.addLatencies("round trip", lat)
	return nil
}
