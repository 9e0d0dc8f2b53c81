package sqlfront

import (
	"errors"
	"fmt"

	"github.com/dolthub/vitess/go/mysql"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/exec/coordinator"
	"sluice/exec/verify"
	"sluice/planner"
	"sluice/raftstore"
)

// This file is the only place that knows MySQL error codes. Each sluice
// error class maps to the MySQL code whose meaning is closest, so clients
// and scripts can branch on the number; the message says what to fix.
//
//	syntax error in the dialect        1064 ER_PARSE_ERROR            42000
//	job (notification) already exists  1050 ER_TABLE_EXISTS_ERROR     42S01
//	job (notification) does not exist  1146 ER_NO_SUCH_TABLE          42S02
//	unknown connector                  1286 ER_UNKNOWN_STORAGE_ENGINE 42000
//	unknown option                     1911 ER_UNKNOWN_OPTION         HY000
//	missing required option            1210 ER_WRONG_ARGUMENTS        HY000
//	option value of the wrong type     1231 ER_WRONG_VALUE_FOR_VAR    42000
//	state does not allow the statement 1221 ER_WRONG_USAGE            HY000
//	privilege missing                  1227 ER_SPECIFIC_ACCESS_DENIED 42000
//	unique value used by another job   1231 ER_WRONG_VALUE_FOR_VAR    42000
//	REMOVE NODE of an unknown node     1210 ER_WRONG_ARGUMENTS        HY000
//	changed concurrently, run again    1213 ER_LOCK_DEADLOCK          40001
//	outcome unknown (leader changed)   1105 ER_UNKNOWN_ERROR          HY000
//	no quorum: writes cannot commit    1290 ER_OPTION_PREVENTS_STMT   HY000
//	no free slots (strategy reject)    1041 ER_OUT_OF_RESOURCES       HY000
//	CHECKSUM of a job it cannot compare 1235 ER_NOT_SUPPORTED_YET     42000
//	anything else                      1105 ER_UNKNOWN_ERROR          HY000
const (
	ss42000                = "42000" // syntax error or access rule violation
	erUnknownStorageEngine = 1286
	erUnknownOption        = 1911
	erOutOfResources       = 1041
	// ER_CONNECT_TO_FOREIGN_DATA_SOURCE: a source or target refused the job at CREATE.
	erConnectToForeignDataSource = 1429
)

// errAccessDenied is returned when a user lacks the privilege a dialect
// statement needs.
var errAccessDenied = errors.New("access denied")

func sqlError(code int, state, format string, args ...any) *mysql.SQLError {
	return mysql.NewSQLError(code, state, format, args...)
}

// toSQLError converts any error of a dialect statement into a MySQL error.
func toSQLError(err error) error {
	if err == nil {
		return nil
	}
	var se *mysql.SQLError
	if errors.As(err, &se) {
		return se
	}
	var syn *planner.SyntaxError
	msg := err.Error()
	switch {
	case errors.As(err, &syn):
		return sqlError(mysql.ERParseError, ss42000,
			"You have an error in your sync job syntax: %s", syn.Error())
	case errors.Is(err, catalog.ErrJobExists):
		return sqlError(mysql.ERTableExists, "42S01", "%s", msg)
	case errors.Is(err, catalog.ErrNotificationExists):
		return sqlError(mysql.ERTableExists, "42S01", "%s", msg)
	case errors.Is(err, catalog.ErrNotificationNotFound):
		return sqlError(mysql.ERNoSuchTable, mysql.SSUnknownTable, "%s", msg)
	case errors.Is(err, catalog.ErrJobNotFound):
		return sqlError(mysql.ERNoSuchTable, mysql.SSUnknownTable, "%s", msg)
	case errors.Is(err, catalog.ErrBadTransition):
		return sqlError(mysql.ERWrongUsage, mysql.SSUnknownSQLState, "%s", msg)
	case errors.Is(err, coordinator.ErrNoSlots):
		return sqlError(erOutOfResources, "HY000", "%s", msg)
	case errors.Is(err, connectors.ErrUnknownConnector):
		return sqlError(erUnknownStorageEngine, ss42000, "%s", msg)
	case errors.Is(err, connectors.ErrUnknownOption):
		return sqlError(erUnknownOption, mysql.SSUnknownSQLState, "%s", msg)
	case errors.Is(err, connectors.ErrMissingOption):
		return sqlError(mysql.ERWrongArguments, mysql.SSUnknownSQLState, "%s", msg)
	case errors.Is(err, connectors.ErrBadOptionValue):
		return sqlError(mysql.ERWrongValueForVar, ss42000, "%s", msg)
	case errors.Is(err, connectors.ErrUnreachable), errors.Is(err, connectors.ErrPrecondition):
		return sqlError(erConnectToForeignDataSource, "HY000", "%s", msg)
	case errors.Is(err, verify.ErrUnsupported):
		return sqlError(mysql.ERNotSupportedYet, ss42000, "%s", msg)
	case errors.Is(err, errAccessDenied):
		return sqlError(mysql.ERSpecifiedAccessDenied, ss42000, "%s", msg)
	case errors.Is(err, catalog.ErrClaimTaken):
		return sqlError(mysql.ERWrongValueForVar, ss42000, "%s", msg)
	case errors.Is(err, catalog.ErrNodeNotFound):
		return sqlError(mysql.ERWrongArguments, mysql.SSUnknownSQLState, "%s (see sluice.nodes.node_id)", msg)
	case errors.Is(err, catalog.ErrConflict):
		return sqlError(mysql.ERLockDeadlock, "40001", "%s", msg)
	case errors.Is(err, raftstore.ErrLeadershipLost) && errors.Is(err, catalog.ErrNoQuorum):
		return sqlError(mysql.ERUnknownError, mysql.SSUnknownSQLState,
			"the catalog lost its quorum while this statement was committing, so whether it took effect is unknown; "+
				"a write needs a majority of the voting members up and connected: look (reads still answer) before you retry: %s", msg)
	case errors.Is(err, raftstore.ErrLeadershipLost):
		return sqlError(mysql.ERUnknownError, mysql.SSUnknownSQLState,
			"the catalog leader changed while this statement was committing, so whether it took effect is unknown; look before you retry: %s", msg)
	case errors.Is(err, catalog.ErrNoQuorum), errors.Is(err, raftstore.ErrNotLeader):
		return sqlError(mysql.EROptionPreventsStatement, mysql.SSUnknownSQLState,
			"the catalog cannot take writes now: a write needs a majority of the voting members up and connected (reads still answer): %s", msg)
	}
	return sqlError(mysql.ERUnknownError, mysql.SSUnknownSQLState, "%s", msg)
}

// accessDenied builds the error for a missing privilege.
func accessDenied(user, priv string) error {
	return fmt.Errorf("%w; you need (at least one of) the %s privilege(s) on %s.* for this operation (user %q)",
		errAccessDenied, priv, DatabaseName, user)
}
