// Package actors runs obs pipelines: every component instance is an actor
// with a bounded mailbox, a supervisor and an ack that follows the data.
package actors
