package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// latencies collects samples; percentiles are exact (sorted), which the
// bounded runs afford.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// percentiles returns the q-quantiles (0..1) in milliseconds.
func (l *latencies) percentiles(qs ...float64) []float64 {
	l.mu.Lock()
	d := slices.Clone(l.d)
	l.mu.Unlock()
	slices.Sort(d)
	out := make([]float64, len(qs))
	if len(d) == 0 {
		return out
	}
	for i, q := range qs {
		k := int(q*float64(len(d))+0.5) - 1
		k = max(0, min(k, len(d)-1))
		out[i] = float64(d[k]) / float64(time.Millisecond)
	}
	return out
}

// cpuTime is the user plus system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the user plus system CPU time of process pid, from
// /proc/PID/stat (clock ticks of 1/100 s on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// rss returns the resident set size of process pid in bytes, from
// /proc/PID/status (VmRSS).
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// progress prints a one-line bar, rewritten in place, while a phase runs.
type progress struct {
	w     io.Writer // nil: silent
	name  string
	total int64
	done  atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startProgress(w io.Writer, name string, total int) *progress {
	p := &progress{w: w, name: name, total: int64(total), start: time.Now(), stop: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.print()
			case <-p.stop:
				p.print()
				fmt.Fprintln(p.w)
				return
			}
		}
	}()
	return p
}

func (p *progress) add(n int) { p.done.Add(int64(n)) }

func (p *progress) print() {
	const width = 30
	d := p.done.Load()
	el := time.Since(p.start)
	fill := 0
	if p.total > 0 {
		fill = int(min(d, p.total) * width / p.total)
	}
	fmt.Fprintf(p.w, "\r%-12s [%s%s] %d/%d %6.0f/s %5.1fs ", p.name,
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), d, p.total,
		float64(d)/max(el.Seconds(), 1e-9), el.Seconds())
}

func (p *progress) end() {
	close(p.stop)
	p.wg.Wait()
}

// pace releases events at a fixed rate, open loop: when the caller falls
// behind, the due events come at once rather than being skipped. Each event
// carries the time it was due, so latencies count from there (no
// coordinated omission). It sleeps until each event is due rather than
// polling on a coarse tick: a 1 ms tick released events 0.5 ms late on
// average, which every latency then carried (mosquitto's pubsub p50 read
// 0.8 ms instead of 0.3).
func pace(stop <-chan struct{}, rate float64, n int, fire func(i int, due time.Time)) {
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			t.Reset(wait)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
		fire(i, due)
	}
}
