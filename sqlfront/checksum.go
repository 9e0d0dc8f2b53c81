package sqlfront

import (
	"context"
	"errors"
	"strconv"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"

	"sluice/connectors"
	"sluice/exec/verify"
	"sluice/planner"
)

// checksum runs CHECKSUM SYNC JOB and answers one row per table.
func (s *Server) checksum(ctx context.Context, st *planner.ChecksumJob) (*sqltypes.Result, error) {
	if s.cfg.Verify == nil {
		return nil, errors.New("CHECKSUM SYNC JOB is not available on this server")
	}
	req := verify.Request{Job: st.Name, Where: st.Where}
	if st.Table != "" {
		req.Table = &connectors.TableID{Database: st.Database, Table: st.Table}
	}
	res, err := s.cfg.Verify(ctx, req)
	if err != nil {
		return nil, err
	}
	out := &sqltypes.Result{Fields: []*querypb.Field{strField("table_name"), intField("chunks"), intField("different_chunks"),
		intField("source_rows"), intField("target_rows"), strField("result")}}
	for _, r := range res {
		verdict := "EQUAL"
		if r.Different > 0 {
			verdict = "DIFFERENT"
		}
		out.Rows = append(out.Rows, []sqltypes.Value{sqltypes.NewVarChar(r.Table), sqltypes.NewInt64(int64(r.Chunks)),
			sqltypes.NewInt64(int64(r.Different)), sqltypes.NewInt64(r.SourceRows), sqltypes.NewInt64(r.TargetRows),
			sqltypes.NewVarChar(verdict)})
	}
	out.RowsAffected = uint64(len(out.Rows))
	return out, nil
}

func (s *Server) verificationsTable() *sysTable {
	return &sysTable{
		name: "verifications", pk: []int{0, 1, 2},
		schema: schema("verifications",
			colDef{"job", tVarchar, false}, colDef{"table_name", tVarchar, false}, colDef{"chunk", types.Int64, false},
			colDef{"lower_key", tText, true}, colDef{"upper_key", tText, true},
			colDef{"source_rows", types.Int64, false}, colDef{"target_rows", types.Int64, false},
			colDef{"source_checksum", tVarchar, false}, colDef{"target_checksum", tVarchar, false},
			colDef{"equal", types.Boolean, false}, colDef{"rechecks", types.Int64, false}, colDef{"checked_at", tDatetime, false}),
		rows: func(*sql.Context) []sql.Row {
			var rows []sql.Row
			for _, v := range s.cfg.Catalog.Verifications() {
				rows = append(rows, sql.NewRow(v.Job, v.Table, int64(v.Chunk), nullable(v.LowerKey), nullable(v.UpperKey),
					v.SourceRows, v.TargetRows, strconv.FormatUint(v.SourceChecksum, 16), strconv.FormatUint(v.TargetChecksum, 16),
					boolInt(v.Equal), int64(v.Rechecks), v.CheckedAt))
			}
			return rows
		},
	}
}
