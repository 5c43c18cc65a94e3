// Runs ioredis, unchanged, against one server and prints a transcript: one JSON line per step,
// its name and what ioredis handed the application (a value, or the error's message). The test
// TestIORedis runs this against a real redis-server and against Vela and compares the two
// transcripts line by line, so every step must be deterministic: TTLs are reported as whether
// they lie in a range, never as numbers.
//
// Usage: node check-ioredis.js host port
"use strict";

const Redis = require("ioredis");

const { within, Transcript } = require("./transcript");

const [host, portText] = process.argv.slice(2);
const port = Number(portText);
const transcript = new Transcript();
const step = (name, fn) => transcript.step(name, fn);

async function main() {
  const options = {
    host,
    port,
    connectionName: "ioredis-check", // CLIENT SETNAME on connect
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    commandTimeout: 5000,
    retryStrategy: () => null, // no reconnect: a dropped connection is a failure here
  };
  const r = new Redis(options); // ready check: INFO, waiting for loading:0
  const other = new Redis(options);
  const auto = new Redis({ ...options, enableAutoPipelining: true });
  try {
    await step("ready", async () => {
      await r.ping();
      return r.status;
    });
    await step("flushall", () => r.flushall());
    await step("client getname", () => r.client("GETNAME"));
    await step("client setname", () => r.client("SETNAME", "renamed"));
    await step("client getname after", () => r.client("GETNAME"));
    await step("echo", () => r.echo("hello"));
    await step("ping message", () => r.ping("hi"));
    await step("select 0", () => r.select(0));
    await step("type of info", async () => typeof (await r.info()));
    await step("info keyspace parses", async () => {
      await r.set("a", "1");
      const info = await r.info("keyspace");
      return /^db0:keys=1,expires=0/m.test(info);
    });

    // Strings.
    await step("set", () => r.set("s", "value"));
    await step("get", () => r.get("s"));
    await step("get missing", () => r.get("missing"));
    await step("set nx on existing", () => r.set("s", "x", "NX"));
    await step("set xx get", () => r.set("s", "second", "XX", "GET"));
    await step("set ex", () => r.set("e", "v", "EX", 100));
    await step("ttl", async () => within(await r.ttl("e"), 99, 100));
    await step("set px keepttl", async () => {
      await r.set("e", "w", "KEEPTTL");
      return within(await r.pttl("e"), 90000, 100000);
    });
    await step("set bad expire", () => r.set("e", "v", "EX", 0));
    await step("set syntax", () => r.set("e", "v", "EX"));
    await step("setex", () => r.setex("se", 50, "v"));
    await step("psetex", () => r.psetex("pse", 50000, "v"));
    await step("setnx", () => r.setnx("s", "v"));
    await step("getset", () => r.getset("s", "third"));
    await step("getdel", () => r.getdel("s"));
    await step("getex persist", async () => {
      await r.set("gx", "v", "EX", 100);
      const v = await r.getex("gx", "PERSIST");
      return [v, await r.ttl("gx")];
    });
    await step("mset", () => r.mset("k1", "v1", "k2", "v2", "k3", "v3"));
    await step("mset object", () => r.mset({ k4: "v4", k5: "v5" }));
    await step("mget", () => r.mget("k1", "k2", "nope", "k5"));
    await step("msetnx", () => r.msetnx("k1", "x", "new", "y"));
    await step("incr", () => r.incr("n"));
    await step("incrby", () => r.incrby("n", 41));
    await step("decr", () => r.decr("n"));
    await step("decrby", () => r.decrby("n", 2));
    await step("incrbyfloat", () => r.incrbyfloat("f", "10.5"));
    await step("incrbyfloat exp", () => r.incrbyfloat("f", "5.0e3"));
    await step("incr not integer", () => r.incr("k1"));
    await step("incr overflow", async () => {
      await r.set("big", "9223372036854775807");
      return r.incr("big");
    });
    await step("append", () => r.append("ap", "abc"));
    await step("append again", () => r.append("ap", "def"));
    await step("strlen", () => r.strlen("ap"));
    await step("getrange", () => r.getrange("ap", 1, -2));
    await step("setrange", () => r.setrange("ap", 8, "Z"));
    await step("getBuffer padded", () => r.getBuffer("ap"));
    await step("binary value", async () => {
      const bin = Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a, 0x80]);
      await r.set(Buffer.from([0xfe, 0x00, 0x41]), bin);
      return r.getBuffer(Buffer.from([0xfe, 0x00, 0x41]));
    });
    await step("large value", async () => {
      const big = "x".repeat(1 << 20);
      await r.set("large", big);
      const got = await r.get("large");
      return [got.length, got === big];
    });

    // Keys.
    await step("exists", () => r.exists("k1", "k2", "nope", "k1"));
    await step("type", async () => [await r.type("k1"), await r.type("nope")]);
    await step("touch", () => r.touch("k1", "nope"));
    await step("expire", () => r.expire("k1", 100));
    await step("expire nx", () => r.expire("k1", 200, "NX"));
    await step("expire gt", () => r.expire("k1", 200, "GT"));
    await step("ttl after gt", async () => within(await r.ttl("k1"), 199, 200));
    await step("pexpire lt", () => r.pexpire("k1", 50000, "LT"));
    await step("expiretime", async () => {
      const at = await r.expiretime("k1");
      const now = Math.floor(Date.now() / 1000);
      return within(at - now, 48, 51);
    });
    await step("persist", () => r.persist("k1"));
    await step("ttl persisted", () => r.ttl("k1"));
    await step("ttl missing", () => r.ttl("nope"));
    await step("expire in the past deletes", async () => {
      await r.expireat("k2", 1);
      return r.exists("k2");
    });
    await step("del", () => r.del("k3", "k4", "nope"));
    await step("unlink", () => r.unlink("k5", "new"));
    await step("keys", async () => (await r.keys("k*")).sort());
    await step("scanStream", async () => {
      for (let i = 0; i < 300; i++) await r.set(`scan:${i}`, i);
      const seen = new Set();
      await new Promise((resolve, reject) => {
        const s = r.scanStream({ match: "scan:*", count: 25 });
        s.on("data", (keys) => keys.forEach((k) => seen.add(k)));
        s.on("end", resolve);
        s.on("error", reject);
      });
      return seen.size;
    });
    await step("scan type", async () => {
      // Until the cursor is back to 0: a page may hold any part of the matches (a cluster
      // member's SCAN pages member by member).
      const keys = [];
      let cursor = "0";
      do {
        let page;
        [cursor, page] = await r.scan(cursor, "MATCH", "scan:1?", "COUNT", 1000, "TYPE", "string");
        keys.push(...page);
      } while (cursor !== "0");
      return keys.sort();
    });
    await step("dbsize", () => r.dbsize());

    // Pipelines and transactions.
    await step("pipeline", () =>
      r.pipeline().set("p", "1").incr("p").get("p").incr("k1").del("p").exec());
    await step("multi", () =>
      r.multi().set("m", "1").incr("m").incr("ap").get("m").exec());
    await step("multi syntax error", () =>
      r.multi().set("m", "1").set("m").exec());
    await step("watch conflict", async () => {
      await r.set("w", "0");
      await r.watch("w");
      await other.set("w", "changed");
      return r.multi().set("w", "mine").exec();
    });
    await step("watch untouched", async () => {
      await r.watch("w");
      return r.multi().incr("n").set("w", "mine").exec();
    });
    await step("auto pipelining", async () => {
      const writes = [];
      for (let i = 0; i < 200; i++) writes.push(auto.set(`ap:${i}`, `v${i}`));
      await Promise.all(writes);
      const reads = [];
      for (let i = 0; i < 200; i++) reads.push(auto.get(`ap:${i}`));
      const got = await Promise.all(reads);
      return got.every((v, i) => v === `v${i}`);
    });

    // Scripts: defineCommand runs EVALSHA and falls back to EVAL on NOSCRIPT.
    r.defineCommand("casSet", {
      numberOfKeys: 1,
      lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2]) end return false",
    });
    await step("script flush", () => r.script("FLUSH"));
    await step("defineCommand cas hit", async () => {
      await r.set("cas", "old");
      return [await r.casSet("cas", "old", "new"), await r.get("cas")];
    });
    await step("defineCommand cas miss", () => r.casSet("cas", "old", "newer"));
    await step("defineCommand in pipeline", () =>
      r.pipeline().casSet("cas", "new", "p1").casSet("cas", "p1", "p2").get("cas").exec());
    await step("eval table", () =>
      r.eval("return {1, 'two', {3, 'four'}, redis.status_reply('OK'), false}", 0));
    await step("eval error", () => r.eval("return redis.call('INCR', KEYS[1])", 1, "ap"));
    await step("eval error reply", () => r.eval("return redis.error_reply('MY own')", 0));
    await step("evalsha unknown", () => r.evalsha("ffffffffffffffffffffffffffffffffffffffff", 0));
    await step("script load and exists", async () => {
      const sha = await r.script("LOAD", "return 1");
      return [sha, await r.script("EXISTS", sha, "0000000000000000000000000000000000000000")];
    });

    // Errors clients parse.
    await step("unknown command", () => r.call("NOSUCHCOMMAND", "a"));
    await step("wrong arity", () => r.call("GET"));
    await step("not an integer", () => r.call("EXPIRE", "k1", "soon"));

    // Clean up.
    await step("flushdb", () => r.flushdb());
    await step("dbsize after flush", () => r.dbsize());
  } finally {
    r.disconnect();
    other.disconnect();
    auto.disconnect();
  }
}

transcript.finish(main(), "check-ioredis.js");
