// Package notify delivers sluice.events to webhooks (CREATE NOTIFICATION):
// on the catalog leader, one goroutine per webhook posts each matching
// event as JSON, in order, retrying with backoff, and records how far it
// got in the catalog so a new leader carries on. It reads the catalog and
// never touches the data path.
package notify
