// Package verify runs CHECKSUM SYNC JOB: it compares a job's source and
// target chunk by chunk while the job runs, and records every chunk in
// sluice.verifications. See DESIGN.md.
package verify
