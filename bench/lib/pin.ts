// CPU pinning: the server under test on one core, the load generator (this
// process) on another. Unpinned, the kernel moves both between the two cores
// and charges loopback TCP work to whichever process happens to run, so one
// server's CPU per request swung from 30 to 55 µs between rounds of the same
// run; pinned, rounds agree within a few percent. Both variants are pinned
// alike (only one is under load at a time). Linux with util-linux's
// `taskset` and at least two cores; elsewhere, or with --no-pin, nothing is
// pinned and the table says so.
import { execFileSync } from 'node:child_process'
import os from 'node:os'

/** The core the load generator runs on, and the one servers run on. */
const LOAD_CPU = 0
const SERVER_CPU = 1

let enabled = false

function taskset (pid: number, cpu: number): boolean {
  try {
    // -a: every thread of the process (tsx's loader runs in a worker).
    execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Pins this process (the load generator) when it can; returns a line for the report. */
export function pinLoad (wanted: boolean): string {
  if (!wanted) return 'not pinned (--no-pin)'
  if (process.platform !== 'linux' || os.cpus().length < 2) return 'not pinned (needs Linux and 2 cores)'
  enabled = taskset(process.pid, LOAD_CPU)
  return enabled ? `load generator pinned to CPU ${LOAD_CPU}, servers to CPU ${SERVER_CPU}` : 'not pinned (taskset not found)'
}

/** Pins a server process to the servers' core, when the load generator is pinned. */
export function pinServer (pid: number | undefined): void {
  if (enabled && pid !== undefined) taskset(pid, SERVER_CPU)
}
