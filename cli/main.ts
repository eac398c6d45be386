#!/usr/bin/env node
/**
 * The `vm-allocator` command. Everything is decided in `run`; this file only connects it to
 * the process: arguments in, text out, exit status. Exit status 2 means bad input or usage, 1
 * an internal error (a bug: please report it with the command that caused it).
 */
import { readFileSync } from "node:fs";
import { run } from "./run.js";

// A reader that closes the pipe early (`vm-allocator plan | head`) is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});

try {
  const outcome = run(process.argv.slice(2), {
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    readStdin: () => readFileSync(0),
  });
  if (outcome.stdout !== "") process.stdout.write(outcome.stdout);
  if (outcome.stderr !== "") process.stderr.write(outcome.stderr);
  process.exitCode = outcome.status;
} catch (error) {
  const detail = error instanceof Error ? (process.env["VM_ALLOCATOR_DEBUG"] ? (error.stack ?? error.message) : error.message) : String(error);
  process.stderr.write(`vm-allocator: internal error: ${detail}\n`);
  process.exitCode = 1;
}
