package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// The randomized crash test's source: tables of three key shapes and one
// without a key, utf8mb4 text, NULLs, TEXT and BLOB columns.
var crashTables = []struct {
	name, create, fill string
	keyless            bool
}{
	{name: "k_int", create: `CREATE TABLE src.k_int (id INT PRIMARY KEY, ver INT NOT NULL, v VARCHAR(100) CHARACTER SET utf8mb4, n INT NULL,
		body TEXT CHARACTER SET utf8mb4, bin BLOB NULL, at DATETIME(6) NULL)`,
		fill: `INSERT INTO src.k_int SELECT seq, 1, CONCAT('v', seq, IF(seq % 7 = 0, ' ✓ 日本語', '')), IF(seq % 3 = 0, NULL, seq % 1000),
		REPEAT('tëxt ', seq % 20), IF(seq % 4 = 0, NULL, UNHEX(SHA1(seq))), IF(seq % 5 = 0, NULL, '2024-01-01' + INTERVAL seq * 1001 MICROSECOND)
		FROM src.seq_1_to_30000`},
	{name: "k_str", create: `CREATE TABLE src.k_str (code VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, ver INT NOT NULL,
		v VARCHAR(100) CHARACTER SET utf8mb4 NULL)`,
		fill: `INSERT INTO src.k_str SELECT CONCAT('c', seq, IF(seq % 2 = 0, '-ü', '-😀')), 1, IF(seq % 6 = 0, NULL, CONCAT('s', seq)) FROM src.seq_1_to_3000`},
	{name: "k_comp", create: `CREATE TABLE src.k_comp (a INT NOT NULL, b VARCHAR(8) CHARACTER SET utf8mb4 NOT NULL, ver INT NOT NULL, qty INT NULL,
		note TEXT CHARACTER SET utf8mb4 NULL, PRIMARY KEY (a, b))`,
		fill: `INSERT INTO src.k_comp SELECT seq DIV 4, ELT(1 + seq % 4, 'x', 'y', 'ü', '日'), 1, seq % 9, IF(seq % 5 = 0, NULL, 'nöte') FROM src.seq_0_to_3999`},
	{name: "nokey", keyless: true, create: `CREATE TABLE src.nokey (seq BIGINT NOT NULL, txt VARCHAR(50) CHARACTER SET utf8mb4 NULL)`,
		fill: `INSERT INTO src.nokey SELECT seq, IF(seq % 3 = 0, NULL, CONCAT('l', seq, ' ✓')) FROM src.seq_1_to_2000`},
}

// canon is, per table, the canonical text of a row: the same expression
// at the source and at a MySQL target (NULL marked, BLOB as base64,
// DATETIME with six fraction digits).
func canonColumns(db *sql.DB, schema, table string) ([]string, error) {
	rows, err := db.Query(`SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY COLUMN_NAME`, schema, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		cols = append(cols, name+":"+typ)
	}
	return cols, rows.Err()
}

func canonExpr(col string) string {
	name, typ, _ := strings.Cut(col, ":")
	q := "`" + name + "`"
	switch {
	case strings.Contains(typ, "binary") || strings.Contains(typ, "blob"):
		q = "TO_BASE64(" + q + ")"
	case typ == "datetime" || typ == "timestamp":
		q = "DATE_FORMAT(" + q + ", '%Y-%m-%d %H:%i:%s.%f')"
	}
	return "IFNULL(CONVERT(" + q + " USING utf8mb4), '\\\\N')"
}

// tableRows returns a table's rows as sorted canonical lines over cols
// (names of the source's columns), and the names.
func tableRows(db *sql.DB, schema, table string, cols []string) ([]string, error) {
	var exprs []string
	for _, c := range cols {
		exprs = append(exprs, canonExpr(c))
	}
	rows, err := db.Query(fmt.Sprintf("SELECT CONCAT_WS('|', %s) FROM `%s`.`%s`", strings.Join(exprs, ","), schema, table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out, rows.Err()
}

// diffRows describes how two sorted multisets of lines differ (I1, I2):
// counts, and the first few lines only one side has.
func diffRows(src, dst []string) string {
	if strings.Join(src, "\n") == strings.Join(dst, "\n") {
		return ""
	}
	var onlySrc, onlyDst []string
	i, j := 0, 0
	for i < len(src) || j < len(dst) {
		switch {
		case j >= len(dst) || i < len(src) && src[i] < dst[j]:
			onlySrc = append(onlySrc, src[i])
			i++
		case i >= len(src) || dst[j] < src[i]:
			onlyDst = append(onlyDst, dst[j])
			j++
		default:
			i++
			j++
		}
	}
	short := func(l []string) []string {
		if len(l) > 3 {
			return append(l[:3:3], fmt.Sprintf("… %d more", len(l)-3))
		}
		return l
	}
	return fmt.Sprintf("source %d rows, target %d; only at the source %q; only at the target %q", len(src), len(dst), short(onlySrc), short(onlyDst))
}

// writer drives the source: random inserts, updates and deletes in
// transactions over one to several tables, now and then a 5000-row
// transaction, and one ADD COLUMN when asked. Every change to a keyed row
// raises its ver, so a target's versions can be watched for going back.
type writer struct {
	db      *sql.DB
	rng     *rand.Rand
	nextID  int
	nextSeq int
	keyless bool         // write the keyless table too
	alter   atomic.Bool  // set: do the ADD COLUMN next
	altered atomic.Bool  // the ADD COLUMN is done
	txns    atomic.Int64 // committed transactions
}

var words = []string{"a", "✓", "日本語", "😀", "naïve", "ü", "x y", "'q'", `"dq"`, "\\bs", "tab\t", ""}

func (w *writer) word() string { return words[w.rng.Intn(len(words))] + fmt.Sprint(w.rng.Intn(1000)) }

func (w *writer) run(ctx context.Context) error {
	for ctx.Err() == nil {
		if w.alter.Load() && !w.altered.Load() {
			if _, err := w.db.Exec("ALTER TABLE src.k_int ADD COLUMN extra VARCHAR(20) CHARACTER SET utf8mb4 NOT NULL DEFAULT 'dflt ✓' AFTER n"); err != nil {
				return fmt.Errorf("add column: %w", err)
			}
			w.altered.Store(true)
		}
		if err := w.txn(); err != nil {
			if strings.Contains(err.Error(), "Deadlock") || strings.Contains(err.Error(), "Lock wait") {
				continue
			}
			return err
		}
		w.txns.Add(1)
		time.Sleep(time.Duration(w.rng.Intn(3)) * time.Millisecond)
	}
	return nil
}

func (w *writer) txn() error {
	tx, err := w.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()       //nolint:errcheck // no-op after Commit
	if w.rng.Intn(200) == 0 { // a large transaction
		start := w.nextID
		w.nextID += 5000
		if _, err := tx.Exec("INSERT INTO src.k_int (id, ver, v, n, body) SELECT ? + seq, 1, CONCAT('big', seq), seq, 'big ✓' FROM src.seq_1_to_5000", start); err != nil {
			return err
		}
		from := 1 + w.rng.Intn(25000)
		if _, err := tx.Exec("UPDATE src.k_int SET ver = ver + 1, v = CONCAT(v, '+') WHERE id BETWEEN ? AND ?", from, from+4999); err != nil {
			return err
		}
		return tx.Commit()
	}
	for k := 0; k < 1+w.rng.Intn(6); k++ {
		var err error
		id := 1 + w.rng.Intn(w.nextID)
		switch op := w.rng.Intn(12); {
		case op < 3:
			w.nextID++
			_, err = tx.Exec("INSERT INTO src.k_int (id, ver, v, n, body, bin, at) VALUES (?, 1, ?, ?, ?, ?, NOW(6))",
				w.nextID, w.word(), nullable(w.rng, w.rng.Intn(100)), strings.Repeat(w.word(), w.rng.Intn(50)), nullable(w.rng, []byte{0, byte(w.rng.Intn(256)), 0xff}))
		case op < 5:
			_, err = tx.Exec("UPDATE src.k_int SET ver = ver + 1, v = ?, n = ? WHERE id BETWEEN ? AND ?", w.word(), nullable(w.rng, w.rng.Intn(9)), id, id+w.rng.Intn(4))
		case op == 5:
			_, err = tx.Exec("DELETE FROM src.k_int WHERE id BETWEEN ? AND ?", id, id+w.rng.Intn(3))
		case op == 6 && w.altered.Load():
			_, err = tx.Exec("UPDATE src.k_int SET ver = ver + 1, extra = ? WHERE id = ?", w.word(), id)
		case op < 8:
			code := fmt.Sprintf("c%d-%s", 1+w.rng.Intn(4000), []string{"ü", "😀", "new"}[w.rng.Intn(3)])
			if w.rng.Intn(3) == 0 {
				_, err = tx.Exec("DELETE FROM src.k_str WHERE code = ?", code)
			} else {
				_, err = tx.Exec("INSERT INTO src.k_str VALUES (?, 1, ?) ON DUPLICATE KEY UPDATE ver = ver + 1, v = VALUES(v)", code, nullable(w.rng, w.word()))
			}
		case op < 10:
			a, b := w.rng.Intn(1200), []string{"x", "y", "ü", "日", "new"}[w.rng.Intn(5)]
			if w.rng.Intn(3) == 0 {
				_, err = tx.Exec("DELETE FROM src.k_comp WHERE a = ? AND b = ?", a, b)
			} else {
				_, err = tx.Exec("INSERT INTO src.k_comp VALUES (?, ?, 1, ?, ?) ON DUPLICATE KEY UPDATE ver = ver + 1, qty = VALUES(qty), note = VALUES(note)",
					a, b, w.rng.Intn(50), nullable(w.rng, w.word()))
			}
		default:
			if !w.keyless {
				continue
			}
			w.nextSeq++
			if w.rng.Intn(4) == 0 {
				_, err = tx.Exec("DELETE FROM src.nokey WHERE seq = ? LIMIT 1", 1+w.rng.Intn(w.nextSeq))
			} else {
				_, err = tx.Exec("INSERT INTO src.nokey VALUES (?, ?)", w.nextSeq, nullable(w.rng, w.word()))
			}
		}
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

func nullable(rng *rand.Rand, v any) any {
	if rng.Intn(5) == 0 {
		return nil
	}
	return v
}

// setupCrashSource creates the source tables with their first rows.
func setupCrashSource(admin *sql.DB, keyless bool) ([]string, error) {
	if _, err := admin.Exec("CREATE DATABASE src"); err != nil {
		return nil, err
	}
	var names []string
	for _, tb := range crashTables {
		if tb.keyless && !keyless {
			continue
		}
		for _, q := range []string{tb.create, tb.fill} {
			if _, err := admin.Exec(q); err != nil {
				return nil, fmt.Errorf("%s: %w", q, err)
			}
		}
		names = append(names, tb.name)
	}
	return names, nil
}
