// What the check programs share: turning a client's results into JSON that keeps them exactly,
// recording steps, and printing the transcript. Each check-*.js runs one client through its
// steps; internal/e2e compares the transcript it prints against Redis with the one against Vela.
"use strict";

// show turns what a client returned into something JSON keeps exactly: Buffers as hex, Maps
// and objects with their keys sorted, non-integer numbers and bigints as text, errors as their
// class and message (with a transaction's replies, when the error carries them).
function show(v) {
  if (Buffer.isBuffer(v)) return { hex: v.toString("hex") };
  if (v instanceof Error) {
    const e = { error: v.constructor.name + ": " + v.message };
    if (v.replies) e.replies = show(v.replies);
    return e;
  }
  if (Array.isArray(v)) return v.map(show);
  if (v instanceof Map) return show(Object.fromEntries(v));
  if (v instanceof Set) return { set: [...v].map(show).sort() };
  if (typeof v === "bigint") return { bigint: v.toString() };
  if (typeof v === "number" && !Number.isInteger(v)) return { float: String(v) };
  if (v !== null && typeof v === "object") {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = show(v[k]);
    return out;
  }
  return v;
}

// within reports whether a TTL lies in [lo, hi], without the number, which differs run to run.
function within(ttl, lo, hi) {
  return lo <= ttl && ttl <= hi ? `in [${lo}, ${hi}]` : `out of range: ${ttl}`;
}

// Transcript collects one JSON line per step.
class Transcript {
  constructor() {
    this.lines = [];
  }

  // step runs fn and records its result (or the error it threw) under name.
  async step(name, fn) {
    let v;
    try {
      v = show(await fn());
    } catch (err) {
      v = err instanceof Error ? show(err) : { error: String(err) };
    }
    this.lines.push(JSON.stringify([name, v]));
  }

  // finish prints the transcript once main's promise settles, and exits non-zero if it failed.
  finish(promise, program) {
    promise.then(
      () => process.stdout.write(this.lines.join("\n") + "\n"),
      (err) => {
        process.stdout.write(this.lines.join("\n") + "\n");
        process.stderr.write(`${program}: ${err && err.stack ? err.stack : err}\n`);
        process.exit(1);
      },
    );
  }
}

module.exports = { show, within, Transcript };
