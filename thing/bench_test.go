package thing_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/thing"
)

// BenchmarkSeedFlow measures the seed's flow through the SDK on loopback
// TCP: a new thing onboards, connects to the API broker and subscribes,
// an app sends it a command over REST, and the handler has it. The server
// hashes the new thing's password with the default argon2id cost. The
// phases are reported as onboard-ms, connect-ms and command-ms.
func BenchmarkSeedFlow(b *testing.B) {
	cfg := serverConfig(b.TempDir())
	cfg.PasswordCost = secret.Cost{} // the server's default
	s := startServer(b, cfg)
	admin := s.adminToken(b)
	var onboard, connect, command time.Duration
	b.ResetTimer()
	for i := range b.N {
		handled := make(chan struct{}, 1)
		tc := s.thingConfig(b, fmt.Sprintf("bench-%d", i))
		tc.Logger = nil
		tc.OnCommand = func(_ context.Context, cmd *thing.Command) []thing.Result {
			handled <- struct{}{}
			return []thing.Result{{Succeeded: true}, {Succeeded: true}}
		}
		start := time.Now()
		c, err := thing.NewClient(context.Background(), tc)
		if err != nil {
			b.Fatal(err)
		}
		for c.Credentials() == nil {
			time.Sleep(50 * time.Microsecond)
		}
		t1 := time.Now()
		awaitConnection(b, c)
		t2 := time.Now()
		s.sendCommand(b, admin, c.ThingID(), v1Command)
		<-handled
		t3 := time.Now()
		onboard += t1.Sub(start)
		connect += t2.Sub(t1)
		command += t3.Sub(t2)
		b.StopTimer()
		disconnect(b, c)
		b.StartTimer()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / float64(time.Millisecond) }
	b.ReportMetric(ms(onboard), "onboard-ms")
	b.ReportMetric(ms(connect), "connect-ms")
	b.ReportMetric(ms(command), "command-ms")
}
