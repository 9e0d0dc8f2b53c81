// Package mysqlconn opens database/sql pools to MySQL-protocol servers for
// the connectors that talk to one (the mysql_cdc source, the mysql sink, the
// starrocks sink's query port), and explains a failed connection the same
// way for all of them.
package mysqlconn
