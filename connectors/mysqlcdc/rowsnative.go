package mysqlcdc

// Rows events through the decoder of rowdecode.go: where the row data is,
// which events and tables it takes, and the emit path without canonical
// values (the same counting and batching as emit → appendRow).

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"sluice/connectors"
)

// headerOnly is the syncer's RowsEventDecodeFunc: the header (table id,
// flags, column count and bitmaps, bound to the table map) is decoded as
// the stream is read; the rows are decoded by the reader (Source.rows).
func headerOnly(e *replication.RowsEvent, data []byte) error {
	_, err := e.DecodeHeader(data)
	return err
}

// rowsData returns the event's data (header and rows, without the event
// header and checksum) and where its rows begin, parsing the rows
// header as DecodeHeader did and checking that both agree.
func (s *Source) rowsData(ev *replication.BinlogEvent, e *replication.RowsEvent) ([]byte, int, error) {
	raw := ev.RawData
	end := len(raw)
	if s.fde != nil && s.fde.ChecksumAlgorithm == replication.BINLOG_CHECKSUM_ALG_CRC32 {
		end -= replication.BinlogChecksumLength
	}
	bad := func(what string) ([]byte, int, error) {
		return nil, 0, fmt.Errorf("rows event at %s:%d: %s", s.file, ev.Header.LogPos, what)
	}
	if end < replication.EventHeaderSize {
		return bad("shorter than its header")
	}
	data := raw[replication.EventHeaderSize:end]
	idSize := 6
	if s.fde != nil && int(ev.Header.EventType) >= 1 && int(ev.Header.EventType) <= len(s.fde.EventTypeHeaderLengths) &&
		s.fde.EventTypeHeaderLengths[ev.Header.EventType-1] == 6 {
		idSize = 4
	}
	pos := idSize + 2
	if e.Version == 2 {
		if len(data) < pos+2 {
			return bad("truncated header")
		}
		pos += int(data[pos]) | int(data[pos+1])<<8 // the extra data's length counts its own two bytes
	}
	if len(data) < pos+1 {
		return bad("truncated header")
	}
	count, _, n := mysql.LengthEncodedInt(data[pos:])
	pos += n
	bm := int(count+7) / 8
	pos += bm
	last := e.ColumnBitmap1
	if e.ColumnBitmap2 != nil {
		pos += bm
		last = e.ColumnBitmap2
	}
	if count != e.ColumnCount || pos > len(data) || pos < len(last) || !bytes.Equal(data[pos-len(last):pos], last) {
		return bad("header does not parse as go-mysql parsed it")
	}
	return data, pos, nil
}

// cachedDecoder is the decoder of a table for one table map layout.
type cachedDecoder struct {
	t     *table
	types []byte
	metas []uint16
	dec   *rowDecoder
}

// decoder returns the decoder for this event's rows, or nil when go-mysql
// decodes them: compressed (MariaDB) or partial-JSON (MySQL) events, and
// tables with a column rowdecode.go does not cover.
func (s *Source) decoder(ev *replication.BinlogEvent, e *replication.RowsEvent, t *table) *rowDecoder {
	switch ev.Header.EventType {
	case replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2,
		replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2:
	default:
		return nil
	}
	key := t.key()
	if c := s.decoders[key]; c != nil && c.t == t && bytes.Equal(c.types, e.Table.ColumnType) && slices.Equal(c.metas, e.Table.ColumnMeta) {
		return c.dec
	}
	if s.decoders == nil {
		s.decoders = map[string]*cachedDecoder{}
	}
	c := &cachedDecoder{t: t, types: bytes.Clone(e.Table.ColumnType), metas: slices.Clone(e.Table.ColumnMeta), dec: planDecoder(e.Table, t)}
	s.decoders[key] = c
	return c.dec
}

// rowsNative routes the row images in data. An image goes straight into
// the pending batch's builders when nothing needs its values (no chunk of
// this table in progress, no key-less snapshot rule); otherwise it is
// decoded to canonical values and routed as go-mysql's rows are.
func (s *Source) rowsNative(t *table, e *replication.RowsEvent, dec *rowDecoder, data []byte) error {
	update := e.Type() == replication.EnumRowsEventTypeUpdate
	kind := connectors.Insert
	if e.Type() == replication.EnumRowsEventTypeDelete {
		kind = connectors.Delete
	}
	direct := (s.chunk == nil || s.chunk.t.ID != t.ID) && !s.keylessSnapshot(t)
	vals := make([]any, len(t.Cols))
	canon := func(i int, v value) (err error) {
		vals[i], err = canonical(&t.Cols[i], v)
		return err
	}
	skipVal := func(int, value) error { return nil }
	// one image: decoded to vals (toVals), or counted as emit counts it and
	// then skipped (emitted before a restart) or appended directly
	image := func(data, bitmap []byte, k connectors.RowKind, toVals bool) (int, error) {
		if toVals {
			return dec.image(data, bitmap, canon)
		}
		if !s.count(t) {
			return dec.image(data, bitmap, skipVal)
		}
		rb := s.builder(t, k)
		n, err := dec.image(data, bitmap, func(i int, v value) error { return appendTo(rb.Field(i+1), &t.Cols[i], v) })
		if err == nil {
			s.rowAdded()
		}
		return n, err
	}
	for pos := 0; pos < len(data); {
		if !update {
			n, err := image(data[pos:], e.ColumnBitmap1, kind, !direct)
			if err != nil {
				return s.rowsErr(t, err)
			}
			pos += n
			if !direct {
				s.change(t, e, slices.Clone(vals), nil)
			}
			continue
		}
		n, err := image(data[pos:], e.ColumnBitmap1, connectors.UpdateBefore, !direct)
		if err != nil {
			return s.rowsErr(t, err)
		}
		pos += n
		var before []any
		if !direct {
			before = slices.Clone(vals)
		}
		if pos >= len(data) {
			return s.rowsErr(t, errShortImage)
		}
		if n, err = image(data[pos:], e.ColumnBitmap2, connectors.UpdateAfter, !direct); err != nil {
			return s.rowsErr(t, err)
		}
		pos += n
		if !direct {
			s.change(t, e, before, slices.Clone(vals))
		}
	}
	return nil
}

func (s *Source) rowsErr(t *table, err error) error {
	return fmt.Errorf("table %s: rows event at %s:%d: %w", t.key(), s.file, s.lastPos, err)
}
