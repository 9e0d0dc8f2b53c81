package mysqlcdc

import (
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// tableFromMap describes a table as a binlog TableMap event does, for rows
// written before later schema changes (a reader that lags behind a DDL).
// Columns the current table still has keep their exact current description;
// the others are derived from the event's types and FULL metadata.
func tableFromMap(tm *replication.TableMapEvent, cur *table) (*table, error) {
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return nil, fmt.Errorf("column names are missing: set binlog_row_metadata=FULL on the source")
	}
	unsigned, enums, sets, colls := tm.UnsignedMap(), tm.EnumStrValueMap(), tm.SetStrValueMap(), tm.CollationMap()
	t := &table{ID: cur.ID, HasPK: cur.HasPK}
	for i, n := range names {
		if j := cur.index(n); j >= 0 {
			t.Cols = append(t.Cols, cur.Cols[j])
			continue
		}
		c := column{Name: n, Nullable: true, Charset: "utf8mb4"}
		if coll, ok := colls[i]; ok {
			switch coll {
			case 63:
				c.Charset = "binary"
			case 5, 8, 15, 31, 47, 48, 49, 94:
				c.Charset = "latin1"
			}
		}
		meta := tm.ColumnMeta[i]
		switch tm.ColumnType[i] {
		case mysql.MYSQL_TYPE_TINY:
			c.DataType = "tinyint"
		case mysql.MYSQL_TYPE_SHORT:
			c.DataType = "smallint"
		case mysql.MYSQL_TYPE_INT24:
			c.DataType = "mediumint"
		case mysql.MYSQL_TYPE_LONG:
			c.DataType = "int"
		case mysql.MYSQL_TYPE_LONGLONG:
			c.DataType = "bigint"
		case mysql.MYSQL_TYPE_NEWDECIMAL:
			c.DataType, c.Prec, c.Scale = "decimal", int(meta>>8), int(meta&0xff)
			c.ColType = fmt.Sprintf("decimal(%d,%d)", c.Prec, c.Scale)
		case mysql.MYSQL_TYPE_FLOAT:
			c.DataType = "float"
		case mysql.MYSQL_TYPE_DOUBLE:
			c.DataType = "double"
		case mysql.MYSQL_TYPE_BIT:
			c.DataType, c.ColType = "bit", fmt.Sprintf("bit(%d)", int(meta>>8)*8+int(meta&0xff))
		case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
			c.DataType = "date"
		case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
			c.DataType, c.ColType = "time", fmt.Sprintf("time(%d)", meta)
		case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
			c.DataType, c.ColType = "datetime", fmt.Sprintf("datetime(%d)", meta)
		case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
			c.DataType, c.ColType = "timestamp", fmt.Sprintf("timestamp(%d)", meta)
		case mysql.MYSQL_TYPE_YEAR:
			c.DataType = "year"
		case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
			c.DataType, c.ColType = "varchar", fmt.Sprintf("varchar(%d)", meta) // bytes: a safe bound on characters
			if c.Charset == "binary" {
				c.DataType, c.ColType = "varbinary", fmt.Sprintf("varbinary(%d)", meta)
			}
		case mysql.MYSQL_TYPE_STRING:
			switch byte(meta >> 8) {
			case mysql.MYSQL_TYPE_ENUM:
				c.DataType, c.Elems = "enum", enums[i]
			case mysql.MYSQL_TYPE_SET:
				c.DataType, c.Elems = "set", sets[i]
			default:
				c.DataType, c.ColType = "varchar", "varchar(255)"
				if c.Charset == "binary" {
					c.DataType, c.ColType = "varbinary", "varbinary(255)"
				}
			}
			if c.DataType == "enum" || c.DataType == "set" {
				c.ColType = c.DataType + "(" + quoteElems(c.Elems) + ")"
			}
		case mysql.MYSQL_TYPE_BLOB:
			c.DataType = "longtext"
			if c.Charset == "binary" {
				c.DataType = "longblob"
			}
		case mysql.MYSQL_TYPE_JSON:
			c.DataType = "json"
		case mysql.MYSQL_TYPE_GEOMETRY:
			c.DataType = "geometry"
		default:
			return nil, fmt.Errorf("column %s: binlog type %d", n, tm.ColumnType[i])
		}
		if c.ColType == "" {
			c.ColType = c.DataType
		}
		if unsigned[i] {
			c.ColType += " unsigned"
		}
		if err := c.resolve(); err != nil {
			return nil, err
		}
		t.Cols = append(t.Cols, c)
	}
	for _, k := range cur.PK {
		if j := t.index(cur.Cols[k].Name); j >= 0 {
			t.PK = append(t.PK, j)
		}
	}
	t.buildSchema()
	return t, nil
}

func quoteElems(elems []string) string {
	out := ""
	for i, e := range elems {
		if i > 0 {
			out += ","
		}
		out += "'" + strings.ReplaceAll(e, "'", "''") + "'"
	}
	return out
}
