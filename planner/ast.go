package planner

// Statement is a parsed dialect statement.
type Statement interface{ statement() }

// Option is one 'key' = 'value' pair as written.
type Option struct {
	Key, Value string
	Pos        int // byte offset of the key
}

// ConnectorClause is `name ( options )` after FROM, TRANSFORM or TO.
type ConnectorClause struct {
	Name    string
	Options []Option
	Pos     int
}

// CreateJob is CREATE SYNC JOB.
type CreateJob struct {
	IfNotExists bool
	Name        string
	Source      ConnectorClause
	Transforms  []ConnectorClause
	Sink        ConnectorClause
	With        []Option
}

// DropJob is DROP SYNC JOB.
type DropJob struct {
	IfExists bool
	Name     string
}

// RemoveNode is REMOVE NODE 'id': the node leaves the cluster for good.
type RemoveNode struct{ ID string }

// PauseJob is PAUSE SYNC JOB.
type PauseJob struct{ Name string }

// ResumeJob is RESUME SYNC JOB.
type ResumeJob struct{ Name string }

// AlterJob is ALTER SYNC JOB … SET ( options ).
type AlterJob struct {
	Name    string
	Options []Option
}

// ShowJobs is SHOW SYNC JOBS [LIKE 'pattern'].
type ShowJobs struct {
	Like    string
	HasLike bool
}

// ShowCreateJob is SHOW CREATE SYNC JOB.
type ShowCreateJob struct{ Name string }

// ChecksumJob is CHECKSUM SYNC JOB name [TABLE db.t] [WHERE condition]:
// compare the job's source and target chunk by chunk. Where is the
// condition's text as written (it goes to both servers).
type ChecksumJob struct {
	Name     string
	Database string // with Table: only this table
	Table    string
	Where    string
}

// ExplainJob is EXPLAIN SYNC JOB name.
type ExplainJob struct{ Name string }

// ExplainCreate is EXPLAIN CREATE SYNC JOB …: the plan of a job not created.
type ExplainCreate struct{ Create *CreateJob }

func (*CreateJob) statement()     {}
func (*DropJob) statement()       {}
func (*PauseJob) statement()      {}
func (*ChecksumJob) statement()   {}
func (*RemoveNode) statement()    {}
func (*ResumeJob) statement()     {}
func (*AlterJob) statement()      {}
func (*ShowJobs) statement()      {}
func (*ShowCreateJob) statement() {}
func (*ExplainJob) statement()    {}
func (*ExplainCreate) statement() {}
