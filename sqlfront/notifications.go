package sqlfront

import (
	"context"
	"net/url"
	"strings"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"

	"sluice/catalog"
	"sluice/planner"
)

// maskURL hides what a webhook URL may carry as a secret: credentials
// and the query string.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "******"
	}
	if u.User != nil {
		u.User = url.User("******")
	}
	if u.RawQuery != "" {
		u.RawQuery = "******"
	}
	return u.String()
}

func (s *Server) notificationStatement(ctx context.Context, st planner.Statement) (*sqltypes.Result, error) {
	cat := s.cfg.Catalog
	switch st := st.(type) {
	case *planner.CreateNotification:
		res, err := cat.CreateNotification(ctx, catalog.CreateNotification{IfNotExists: st.IfNotExists,
			Notification: catalog.Notification{Name: st.Name, URL: st.URL, Job: st.Job, Events: st.Events}})
		if err != nil {
			return nil, err
		}
		return okResult(res.Applied), nil
	case *planner.DropNotification:
		res, err := cat.DropNotification(ctx, catalog.DropNotification{Name: st.Name, IfExists: st.IfExists})
		if err != nil {
			return nil, err
		}
		return okResult(res.Applied), nil
	}
	res := &sqltypes.Result{Fields: []*querypb.Field{strField("Name"), strField("URL"), strField("Job"), strField("Events"),
		intField("Delivered_seq"), intField("Pending")}}
	for _, n := range cat.Notifications() {
		res.Rows = append(res.Rows, []sqltypes.Value{sqltypes.NewVarChar(n.Name), sqltypes.NewVarChar(maskURL(n.URL)),
			nullableString(n.Job), nullableString(strings.Join(n.Events, ",")), sqltypes.NewInt64(int64(n.Cursor)),
			sqltypes.NewInt64(pending(cat, n))})
	}
	return res, nil
}

// pending counts the retained events the webhook still has to get.
func pending(cat *catalog.Catalog, n catalog.Notification) int64 {
	var k int64
	for _, ev := range cat.EventsAfter(n.Cursor) {
		if n.Wants(ev) {
			k++
		}
	}
	return k
}

func (s *Server) notificationsTable() *sysTable {
	return &sysTable{
		name: "notifications", pk: []int{0},
		schema: schema("notifications",
			colDef{"name", tVarchar, false}, colDef{"url", tText, false}, colDef{"job", tVarchar, true},
			colDef{"events", tText, true}, colDef{"delivered_seq", types.Uint64, false}, colDef{"pending", types.Int64, false},
			colDef{"created_at", tDatetime, false}),
		rows: func(*sql.Context) []sql.Row {
			var rows []sql.Row
			for _, n := range s.cfg.Catalog.Notifications() {
				rows = append(rows, sql.NewRow(n.Name, maskURL(n.URL), nullable(n.Job), nullable(strings.Join(n.Events, ",")),
					n.Cursor, pending(s.cfg.Catalog, n), n.CreatedAt))
			}
			return rows
		},
	}
}
