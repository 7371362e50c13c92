//go:build cgo && libsqlite3

package store

import (
	"context"
	"database/sql"
	"errors"
)

// Group commit of CreateOrder.
//
// dqlite takes one write transaction at a time, and each costs a raft
// round (a quorum write) however little it holds, so with several clients
// the orders per second are bounded by transactions per second. Creates
// that arrive while a transaction is in flight therefore queue up, and
// whoever next holds the write slot writes up to maxCreateBatch of them in
// one transaction. There is no timer: a lone create finds the slot free
// and is written at once, alone; a batch forms only from callers that were
// waiting anyway.
//
// Each create in a batch keeps its own outcome. A conflict or a missing
// profile revision is found by a read and fails that create alone (an
// itemError; nothing was written for it). Any other error ends the
// batch's transaction: a transient one is retried for the whole batch by
// runTx, like any transaction; after a final one, each create of the
// batch runs again in a transaction of its own, so only the create that
// caused it gets the error. Every rerun recognises an order of its own
// that an earlier, unacknowledged commit stored (by ID, see createInTx).
const (
	maxCreateBatch = 32
	// createQueueLen bounds the creates waiting for the write slot; a
	// caller beyond it waits (bounded by its context) to enqueue.
	createQueueLen = 4 * maxCreateBatch
)

// createReq is one CreateOrder call waiting for its batch.
type createReq struct {
	ctx  context.Context
	n    NewOrder
	res  CreateResult
	err  error
	done chan struct{} // closed when res and err are set
}

func (r *createReq) finish(res CreateResult, err error) {
	r.res, r.err = res, err
	close(r.done)
}

// itemError is an error of one create that leaves the transaction usable
// for the others of its batch.
type itemError struct{ err error }

func (e itemError) Error() string { return e.err.Error() }
func (e itemError) Unwrap() error { return e.err }

// enqueueCreate queues n and waits for its outcome, writing batches
// itself whenever it gets the write slot first. If ctx ends first, the
// create may still be written (as when a commit's answer is lost): the
// caller retries with the same client_order_id and learns the outcome.
func (s *Store) enqueueCreate(ctx context.Context, n NewOrder) (CreateResult, error) {
	if s.closed.Load() {
		return CreateResult{}, ErrClosed
	}
	req := &createReq{ctx: ctx, n: n, done: make(chan struct{})}
	for queued := false; !queued; {
		select {
		case s.createQ <- req:
			queued = true
		case s.writeSem <- struct{}{}:
			// A full queue may hold only creates whose callers gave
			// up: nobody else would drain it.
			s.writeCreateBatch()
			<-s.writeSem
		case <-s.stopped:
			return CreateResult{}, ErrClosed
		case <-ctx.Done():
			return CreateResult{}, ctx.Err()
		}
	}
	for {
		select {
		case <-req.done:
			return req.res, req.err
		case s.writeSem <- struct{}{}:
			s.writeCreateBatch()
			<-s.writeSem
		case <-s.stopped:
			// No batch runs any more; ours may have just finished.
			select {
			case <-req.done:
				return req.res, req.err
			default:
				return CreateResult{}, ErrClosed
			}
		case <-ctx.Done():
			return CreateResult{}, ctx.Err()
		}
	}
}

// writeCreateBatch takes up to maxCreateBatch queued creates and writes
// them in one transaction. The caller holds the write slot.
func (s *Store) writeCreateBatch() {
	batch := make([]*createReq, 0, maxCreateBatch)
take:
	for len(batch) < maxCreateBatch {
		select {
		case r := <-s.createQ:
			if err := r.ctx.Err(); err != nil {
				r.finish(CreateResult{}, err) // its caller is gone
				continue
			}
			batch = append(batch, r)
		default:
			break take
		}
	}
	if len(batch) == 0 {
		return
	}
	if s.closed.Load() {
		for _, r := range batch {
			r.finish(CreateResult{}, ErrClosed)
		}
		return
	}
	if s.batchHook != nil {
		s.batchHook(len(batch))
	}
	if len(batch) == 1 {
		r := batch[0]
		res, err := s.createAlone(r.ctx, r.n)
		r.finish(res, err)
		return
	}
	// The batch is everyone's: no one caller's cancellation may cut it
	// off. runTx's retry policy bounds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), 2*s.retry.MaxElapsed)
	defer cancel()
	results := make([]CreateResult, len(batch))
	errs := make([]error, len(batch))
	err := s.runTx(ctx, func(tx *sql.Tx) error {
		for i, r := range batch {
			results[i], errs[i] = s.createInTx(ctx, tx, r.n)
			if errs[i] != nil && !errors.As(errs[i], new(itemError)) {
				return errs[i]
			}
		}
		return nil
	})
	if err == nil {
		for i, r := range batch {
			r.finish(results[i], unwrapItem(errs[i]))
		}
		return
	}
	if retryable(err) || errors.Is(err, ErrClosed) || ctx.Err() != nil {
		// Retries ran out (a leader lost for good, say): running each
		// create again alone would only wait as long again, per create.
		for _, r := range batch {
			r.finish(CreateResult{}, err)
		}
		return
	}
	// A final error of one create: find out whose, one transaction each.
	for _, r := range batch {
		res, err := s.createAlone(r.ctx, r.n)
		r.finish(res, err)
	}
}

// createAlone writes one create in a transaction of its own. Without an
// edge target its one INSERT goes alone, without BEGIN and COMMIT (see
// one): what a raw single-row insert costs. An edge target is a second
// statement (createInTx), so that order takes a transaction: a retry
// after a lost answer must not find the order stored without its target.
func (s *Store) createAlone(ctx context.Context, n NewOrder) (CreateResult, error) {
	var res CreateResult
	write := func(q querier) error {
		var err error
		res, err = s.createInTx(ctx, q, n)
		return err
	}
	var err error
	if n.EdgeTarget == nil {
		err = s.runOne(ctx, writeTx, write)
	} else {
		err = s.runTx(ctx, func(tx *sql.Tx) error { return write(tx) })
	}
	if err != nil {
		return CreateResult{}, unwrapItem(err)
	}
	return res, nil
}

// unwrapItem drops the itemError marker: callers match the sentinel
// errors (ErrConflict, ErrNotFound) inside with errors.Is either way.
func unwrapItem(err error) error {
	var ie itemError
	if errors.As(err, &ie) {
		return ie.err
	}
	return err
}
