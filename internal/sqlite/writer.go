package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit.
//
// Every write of the store runs on one goroutine, the writer, which owns the
// single writer connection. A write is a function of a transaction; the
// writer takes every write queued while it was busy (up to maxBatch) into one
// transaction, each inside its own savepoint, and commits them together. A
// write that fails is rolled back to its savepoint and gets its own error;
// the others still commit. Every caller returns only after the commit that
// holds its write (or after its error), so the durability promise of the
// package documentation holds for each write as before.
//
// Under load this pays SQLite's per-transaction cost (the WAL frames of the
// touched pages, the WAL index and lock traffic) once per batch instead of
// once per write, so the writer's throughput grows with the load instead of a
// queue forming behind it. A lone write runs in a transaction of its own,
// without savepoints, as it did before.

// maxBatch bounds the writes of one transaction, and with it how long the
// first write of a batch waits for the others (a write costs tens of
// microseconds inside a batch).
const maxBatch = 64

// errClosed is returned for writes made after Close.
var errClosed = errors.New("sqlite: store is closed")

// writeFunc is one write: it runs its statements on tx and returns their
// error. It must not keep tx or touch anything but tx: other writes share the
// transaction.
type writeFunc func(ctx context.Context, tx *sql.Tx) error

type writeOp struct {
	ctx  context.Context
	fn   writeFunc
	err  error
	lazy bool
	done chan struct{}
}

var opPool = sync.Pool{New: func() any { return &writeOp{done: make(chan struct{}, 1)} }}

// writer runs the writes queued on ops in batches on the writer connection.
type writer struct {
	w    *sql.DB
	ops  chan *writeOp
	quit chan struct{} // closed by stop
	done chan struct{} // closed when run returns
	// savepoint statements, prepared once on the writer connection.
	savepoint, release, rollbackTo *sql.Stmt
	// committed is called after each commit.
	committed func()
	// txs counts the transactions run, writes the writes in them.
	txs, writes atomic.Uint64

	// lazyWait bounds how long a batch of lazy writes waits for an eager
	// one (writeLazy); lastEager is when the last batch with an eager write
	// committed. Both are the run goroutine's.
	lazyWait    time.Duration
	lastEager   time.Time
	lingerTimer *time.Timer
	// lingering, if set (tests), is called when a batch starts to wait.
	lingering func()
}

// defaultLazyWait is the writer's lazyWait: a fraction of a command's
// REST round trip, and under load about the time to the next eager write.
const defaultLazyWait = time.Millisecond

// WriteStats are the writer's counters since Open.
type WriteStats struct {
	// Transactions is the number of transactions the writer ran; Writes the
	// number of writes run in them. Writes/Transactions is the mean batch.
	Transactions, Writes uint64
	// Checkpoints is the number of checkpoints run off the writer.
	Checkpoints uint64
}

// WriteStats returns the writer's counters.
func (db *DB) WriteStats() WriteStats {
	return WriteStats{Transactions: db.wr.txs.Load(), Writes: db.wr.writes.Load(), Checkpoints: db.cp.runs.Load()}
}

func newWriter(ctx context.Context, w *sql.DB, committed func()) (*writer, error) {
	wr := &writer{w: w, committed: committed, ops: make(chan *writeOp, 4*maxBatch), quit: make(chan struct{}), done: make(chan struct{})}
	for _, s := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&wr.savepoint, "SAVEPOINT w"},
		{&wr.release, "RELEASE w"},
		{&wr.rollbackTo, "ROLLBACK TO w"},
	} {
		stmt, err := w.PrepareContext(ctx, s.query)
		if err != nil {
			wr.closeStmts()
			return nil, fmt.Errorf("sqlite: prepare %q: %w", s.query, err)
		}
		*s.dst = stmt
	}
	wr.lazyWait = defaultLazyWait
	wr.lingerTimer = time.NewTimer(time.Hour)
	wr.lingerTimer.Stop()
	go wr.run()
	return wr, nil
}

func (wr *writer) closeStmts() {
	for _, s := range []*sql.Stmt{wr.savepoint, wr.release, wr.rollbackTo} {
		if s != nil {
			s.Close()
		}
	}
}

// stop finishes the queued writes, refuses new ones and waits for the
// writer to return.
func (wr *writer) stop() {
	select {
	case <-wr.quit:
	default:
		close(wr.quit)
	}
	<-wr.done
	wr.closeStmts()
}

// write queues fn and waits for the commit of the transaction that ran it.
// A write whose ctx is done before it runs is not run; once it runs it is
// not interrupted (an interrupted statement would roll back the whole
// shared transaction), so ctx's deadline bounds the wait in the queue only.
func (wr *writer) write(ctx context.Context, fn writeFunc) error { return wr.queue(ctx, fn, false) }

// writeLazy is write for bookkeeping that may wait for company: when the
// writer just committed an eager (plain) write, a batch of lazy writes only
// waits up to lazyWait for the next eager write and commits with it. Under
// load that saves a commit per command (its DELIVERED mark rides on the next
// command's insert); a lone lazy write waits at most lazyWait, and a caller
// making lazy writes one after another waits once. The write is committed
// when writeLazy returns, as with write.
func (wr *writer) writeLazy(ctx context.Context, fn writeFunc) error { return wr.queue(ctx, fn, true) }

func (wr *writer) queue(ctx context.Context, fn writeFunc, lazy bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := opPool.Get().(*writeOp)
	op.ctx, op.fn, op.err, op.lazy = ctx, fn, nil, lazy
	select {
	case wr.ops <- op:
	case <-wr.quit:
		op.ctx, op.fn = nil, nil
		opPool.Put(op)
		return errClosed
	case <-ctx.Done():
		op.ctx, op.fn = nil, nil
		opPool.Put(op)
		return ctx.Err()
	}
	select {
	case <-op.done:
	case <-wr.done:
		// The writer signals every op it took before it returns.
		select {
		case <-op.done:
		default:
			return errClosed // queued after the writer's last look; never run
		}
	}
	err := op.err
	op.ctx, op.fn, op.err = nil, nil, nil
	opPool.Put(op)
	return err
}

func (wr *writer) run() {
	defer close(wr.done)
	batch := make([]*writeOp, 0, maxBatch)
	for {
		var first *writeOp
		select {
		case first = <-wr.ops:
		case <-wr.quit:
			// Writes queued before stop still run; later ones see quit.
			for {
				select {
				case op := <-wr.ops:
					wr.commit(append(batch[:0], op))
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
		eager := !first.lazy
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-wr.ops:
				batch = append(batch, op)
				eager = eager || !op.lazy
			default:
				break fill
			}
		}
		// A batch of lazy writes only, right after a batch with an eager
		// one, waits a little for the next eager write to commit with.
		// After a lazy-only batch it does not: a caller that makes lazy
		// writes one after the other waits at most once.
		if !eager && time.Since(wr.lastEager) < wr.lazyWait {
			eager = wr.linger(&batch)
		}
		wr.commit(batch)
		if eager {
			wr.lastEager = time.Now()
		}
		clear(batch)
	}
}

// linger adds writes to a batch of lazy writes until an eager one comes,
// the batch is full, lazyWait has passed or the writer stops, and reports
// whether an eager write came.
func (wr *writer) linger(batch *[]*writeOp) bool {
	if wr.lingering != nil {
		wr.lingering()
	}
	wr.lingerTimer.Reset(wr.lazyWait)
	defer wr.lingerTimer.Stop()
	for len(*batch) < maxBatch {
		select {
		case op := <-wr.ops:
			*batch = append(*batch, op)
			if !op.lazy {
				return true
			}
		case <-wr.lingerTimer.C:
			return false
		case <-wr.quit:
			return false
		}
	}
	return false
}

// commit runs batch in one transaction and reports each write's outcome.
func (wr *writer) commit(batch []*writeOp) {
	finish := func(err error) {
		for _, op := range batch {
			if op.err == nil {
				op.err = err
			}
			op.done <- struct{}{}
		}
	}
	// Writes whose caller gave up while queued are not run.
	live := 0
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.err = err
		} else {
			live++
		}
	}
	if live == 0 {
		finish(nil)
		return
	}
	wr.txs.Add(1)
	wr.writes.Add(uint64(live))
	bg := context.Background()
	tx, err := wr.w.BeginTx(bg, nil)
	if err != nil {
		finish(fmt.Errorf("begin: %w", err))
		return
	}
	if live == 1 {
		for _, op := range batch {
			if op.err == nil {
				op.err = op.fn(context.WithoutCancel(op.ctx), tx)
				if op.err != nil {
					tx.Rollback()
					finish(nil)
					return
				}
			}
		}
	} else {
		if err := wr.runSavepoints(tx, batch); err != nil {
			tx.Rollback()
			finish(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		finish(fmt.Errorf("commit: %w", err))
		return
	}
	wr.committed()
	finish(nil)
}

// runSavepoints runs each live write of batch in a savepoint of tx. A write
// that fails is rolled back to its savepoint and keeps its error. If the
// transaction itself breaks (SQLite rolls back the whole transaction on some
// errors, such as a full disk), runSavepoints returns that error for every
// write that had succeeded: nothing of the batch is committed.
func (wr *writer) runSavepoints(tx *sql.Tx, batch []*writeOp) error {
	bg := context.Background()
	savepoint := tx.StmtContext(bg, wr.savepoint)
	release := tx.StmtContext(bg, wr.release)
	rollbackTo := tx.StmtContext(bg, wr.rollbackTo)
	for _, op := range batch {
		if op.err != nil {
			continue
		}
		if _, err := savepoint.ExecContext(bg); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		if op.err = op.fn(context.WithoutCancel(op.ctx), tx); op.err != nil {
			if _, err := rollbackTo.ExecContext(bg); err != nil {
				return fmt.Errorf("after %w: rollback to savepoint: %w", op.err, err)
			}
		}
		if _, err := release.ExecContext(bg); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
	}
	return nil
}
