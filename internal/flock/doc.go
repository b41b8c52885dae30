// Package flock takes advisory flock(2) locks on files, waiting up to a
// deadline, and records who holds an exclusive lock (pid, host, start time,
// operation) so that a process that has to give up can say who is in its way.
//
// flock locks belong to the open file and vanish when the holder dies, so a
// crashed process never leaves a stale lock behind.
package flock
