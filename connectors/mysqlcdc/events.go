package mysqlcdc

// Binlog events: transaction boundaries, GTID contiguity, XA groups and
// rows events routed to the snapshot chunk or emitted.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"

	"sluice/connectors"
)

// handle applies one binlog event to the reader state. The event is
// already taken from the queue, so its queries must not be cut short by the
// Read's context (a checkpoint trigger): that would lose the event.
func (s *Source) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	ctx = context.WithoutCancel(ctx)
	h := ev.Header
	s.mon.seen(h.Timestamp)
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		s.file = string(e.NextLogName)
		s.lastPos = uint32(e.Position)
		if !s.inTxn {
			s.boundary = binlogPos{s.file, s.lastPos}
		}
		return nil
	case *replication.GenericEvent:
		if h.EventType == replication.HEARTBEAT_EVENT || h.EventType == replication.HEARTBEAT_LOG_EVENT_V2 {
			if h.LogPos > 0 && !s.inTxn {
				s.lastPos = h.LogPos
			}
			return nil
		}
	case *replication.FormatDescriptionEvent:
		s.fde = e
		return nil
	}
	if h.LogPos > 0 {
		s.lastPos = h.LogPos
	}
	switch e := ev.Event.(type) {
	case *replication.MariadbGTIDEvent:
		s.inTxn, s.txnRows = true, false
		s.txnMaria = e.GTID
		if err := s.checkContiguous(e.GTID); err != nil {
			return err
		}
	case *replication.GTIDEvent:
		s.inTxn, s.txnRows = true, false
		if sid, err := uuid.FromBytes(e.SID); err == nil {
			s.txnMySQL.sid, s.txnMySQL.gno, s.txnMySQL.ok = sid, e.GNO, true
		}
	case *replication.XIDEvent:
		s.commit(h)
	case *replication.GenericEvent:
		if h.EventType == replication.XA_PREPARE_LOG_EVENT {
			return s.xaPrepare(h)
		}
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		uq := strings.ToUpper(q)
		switch {
		case uq == "BEGIN":
			s.inTxn = true
		case uq == "COMMIT", strings.HasPrefix(uq, "XA COMMIT"), strings.HasPrefix(uq, "XA ROLLBACK"), uq == "ROLLBACK":
			s.commit(h)
		case strings.HasPrefix(uq, "XA PREPARE"):
			return s.xaPrepare(h)
		case strings.HasPrefix(uq, "XA "), strings.HasPrefix(uq, "SAVEPOINT"):
		default:
			if err := s.ddl(ctx, string(e.Schema), q); err != nil {
				return err
			}
			s.commit(h)
		}
	case *replication.RowsEvent:
		if s.notBefore != 0 && h.Timestamp < s.notBefore {
			return nil
		}
		return s.rows(ctx, ev, e)
	}
	return nil
}

// checkContiguous enforces invariant I8 on MariaDB: within a GTID domain,
// sequence numbers follow each other without holes. (File offsets cannot
// be used: the server leaves out events a replica did not ask for.)
func (s *Source) checkContiguous(g mysql.MariadbGTID) error {
	ms, ok := s.gset.(*mysql.MariadbGTIDSet)
	if !ok {
		return nil
	}
	var last *mysql.MariadbGTID
	for _, v := range ms.Sets[g.DomainID] {
		if last == nil || v.SequenceNumber > last.SequenceNumber {
			last = v
		}
	}
	if last == nil || g.SequenceNumber <= last.SequenceNumber+1 {
		return nil
	}
	return fmt.Errorf("binlog gap: transaction %s follows %s in domain %d, so %d transaction(s) are missing from the binlog stream; refusing to continue",
		g.String(), last.String(), g.DomainID, g.SequenceNumber-last.SequenceNumber-1)
}

// xaPrepare ends the event group of a two-phase XA transaction at its
// XA PREPARE. The server logs the rows there and the outcome (XA COMMIT or
// XA ROLLBACK) later as a group of its own. Rows of a captured table cannot
// be applied before the outcome is known, and holding them across
// checkpoints is not built yet, so such a transaction stops the job loudly
// rather than apply what may roll back. One on other tables (an
// exactly-once sink writing to this server) is one GTID group like any
// other.
func (s *Source) xaPrepare(h *replication.EventHeader) error {
	if s.txnRows {
		return fmt.Errorf("%w: a source transaction changed captured tables under two-phase XA (XA PREPARE at %s:%d); "+
			"mysql_cdc cannot tell yet whether it will commit or roll back, so it stops instead of guessing",
			connectors.ErrPrecondition, s.file, h.LogPos)
	}
	s.commit(h)
	return nil
}

// commit closes the current transaction: it becomes the restart boundary.
func (s *Source) commit(h *replication.EventHeader) {
	if s.maria && s.txnMaria.SequenceNumber != 0 {
		if ms, ok := s.gset.(*mysql.MariadbGTIDSet); ok {
			g := s.txnMaria
			_ = ms.AddSet(&g)
		}
	} else if s.txnMySQL.ok {
		if ms, ok := s.gset.(*mysql.MysqlGTIDSet); ok {
			ms.AddGTID(s.txnMySQL.sid, s.txnMySQL.gno)
		}
	}
	s.txnMaria = mysql.MariadbGTID{}
	s.txnMySQL.ok = false
	s.inTxn, s.txnRows = false, false
	if s.chunk == nil && (s.snap == nil || !s.snap.Active) {
		s.markHere()
	}
	s.boundary = binlogPos{s.file, h.LogPos}
	if h.Timestamp > 0 {
		s.eventTime = time.Unix(int64(h.Timestamp), 0)
	}
}

// rows routes the changes of one rows event.
func (s *Source) rows(ctx context.Context, ev *replication.BinlogEvent, e *replication.RowsEvent) error {
	h := ev.Header
	t := s.tables[string(e.Table.Schema)+"."+string(e.Table.Table)]
	if t == nil {
		return nil
	}
	data, pos, err := s.rowsData(ev, e)
	if err != nil {
		return err
	}
	if pos >= len(data) {
		return nil // no rows
	}
	s.txnRows = true
	if len(t.pendingDDL) > 0 || int(e.ColumnCount) != len(t.Cols) || !namesMatch(e.Table.ColumnNameString(), t) {
		// The table changed since its schema was taken: the binlog's own
		// description (FULL row metadata) of these rows decides, with the
		// current table filling in exact types of columns it still has.
		nt, err := loadTable(ctx, s.db, t.ID, s.set.chunkKey)
		if err != nil {
			return err
		}
		if int(e.ColumnCount) != len(nt.Cols) || !namesMatch(e.Table.ColumnNameString(), nt) {
			if nt, err = tableFromMap(e.Table, nt); err != nil {
				return fmt.Errorf("%w: table %s has columns %v in the binlog at %s:%d but %v now, and the binlog does not describe them: %v",
					connectors.ErrPrecondition, t.key(), e.Table.ColumnNameString(), s.file, h.LogPos, t.colNames(), err)
			}
		}
		ddl := strings.Join(t.pendingDDL, ";\n")
		if ddl == "" {
			ddl = "-- schema changed"
		}
		s.tables[t.key()] = nt
		t = nt
		s.announce(t, ddl)
	}
	if h.Timestamp > 0 {
		s.eventTime = time.Unix(int64(h.Timestamp), 0)
	}
	if dec := s.decoder(ev, e, t); dec != nil {
		return s.rowsNative(t, e, dec, data[pos:])
	}
	// go-mysql decodes the rows; fromBinlog converts them.
	if err := e.DecodeData(pos, data); err != nil {
		return fmt.Errorf("table %s: rows event at %s:%d: %w", t.key(), s.file, h.LogPos, err)
	}
	conv := func(row []any) ([]any, error) {
		out := make([]any, len(t.Cols))
		for i := range t.Cols {
			v, err := t.Cols[i].fromBinlog(row[i])
			if err != nil {
				return nil, fmt.Errorf("table %s: %w", t.key(), err)
			}
			out[i] = v
		}
		return out, nil
	}
	update := e.Type() == replication.EnumRowsEventTypeUpdate
	for i := 0; i < len(e.Rows); i++ {
		img, err := conv(e.Rows[i])
		if err != nil {
			return err
		}
		if !update {
			s.change(t, e, img, nil)
			continue
		}
		if i+1 >= len(e.Rows) {
			break
		}
		after, err := conv(e.Rows[i+1])
		if err != nil {
			return err
		}
		i++
		s.change(t, e, img, after)
	}
	return nil
}

// change routes one row change in canonical values: an insert or delete
// image, or an update's before and after images.
func (s *Source) change(t *table, e *replication.RowsEvent, vals, after []any) {
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert, replication.EnumRowsEventTypeDelete:
		k := connectors.Insert
		if e.Type() == replication.EnumRowsEventTypeDelete {
			k = connectors.Delete
		}
		if s.chunk != nil && s.chunk.t.ID == t.ID && s.chunk.route(k, vals, t) {
			s.emitted++ // counted like an emitted change: see routed
			return
		}
		s.emit(t, k, vals)
	case replication.EnumRowsEventTypeUpdate:
		before := vals
		if s.chunk != nil && s.chunk.t.ID == t.ID {
			kb, ka := t.keyString(before), t.keyString(after)
			if kb == ka {
				if s.chunk.route(connectors.UpdateAfter, after, t) {
					s.emitted += 2 // both images, as emit would count them
					return
				}
			} else {
				if s.chunk.route(connectors.Delete, before, t) {
					s.emitted++
				} else {
					s.emit(t, connectors.Delete, before)
				}
				if s.chunk.route(connectors.Insert, after, t) {
					s.emitted++
				} else {
					s.emit(t, connectors.Insert, after)
				}
				return
			}
		}
		// Each row counts on its own: a batch may end between the two.
		s.emit(t, connectors.UpdateBefore, before)
		s.emit(t, connectors.UpdateAfter, after)
	}
}

func namesMatch(names []string, t *table) bool {
	if len(names) == 0 {
		return true // binlog_row_metadata is not FULL: only the count can be checked
	}
	if len(names) != len(t.Cols) {
		return false
	}
	for i, n := range names {
		if !strings.EqualFold(n, t.Cols[i].Name) {
			return false
		}
	}
	return true
}
