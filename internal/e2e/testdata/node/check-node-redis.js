// Runs node-redis (the npm package "redis"), unchanged, against one server and prints a
// transcript: one JSON line per step, its name and what node-redis handed the application (a
// value, or the error's message). The test TestNodeRedis runs this against a real redis-server
// and against Vela and compares the two transcripts line by line, so every step must be
// deterministic: TTLs are reported as whether they lie in a range, never as numbers. Every step
// runs twice, over RESP2 and over RESP3 (HELLO 3 on connect), with the protocol in its name.
//
// Usage: node check-node-redis.js host port
"use strict";

const { createClient, defineScript, RESP_TYPES } = require("redis");

const { within, Transcript } = require("./transcript");

const [host, portText] = process.argv.slice(2);
const port = Number(portText);
const transcript = new Transcript();

const cas = defineScript({
  SCRIPT:
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2]) end return false",
  NUMBER_OF_KEYS: 1,
  parseCommand(parser, key, expected, value) {
    parser.pushKey(key);
    parser.push(expected, value);
  },
  transformReply(reply) {
    return reply;
  },
});

async function run(RESP) {
  const step = (name, fn) => transcript.step(`resp${RESP} ${name}`, fn);
  const options = {
    socket: { host, port, connectTimeout: 5000, reconnectStrategy: false },
    name: "node-redis-check", // CLIENT SETNAME on connect
    RESP,
    scripts: { cas },
  };
  const r = createClient(options);
  const other = createClient(options);
  r.on("error", () => {});
  other.on("error", () => {});
  await r.connect(); // HELLO 3 (RESP3), CLIENT SETNAME, CLIENT SETINFO LIB-NAME and LIB-VER
  await other.connect();
  try {
    await step("flushAll", () => r.flushAll());
    await step("clientGetName", () => r.clientGetName());
    await step("ping", () => r.ping());
    await step("echo", () => r.echo("hello"));
    await step("info keyspace", async () => {
      await r.set("a", "1");
      return /^db0:keys=1,expires=0/m.test(await r.info("keyspace"));
    });

    // Strings.
    await step("set", () => r.set("s", "value"));
    await step("get", () => r.get("s"));
    await step("get missing", () => r.get("missing"));
    await step("set NX", () => r.set("s", "x", { condition: "NX" }));
    await step("set XX GET", () => r.set("s", "second", { condition: "XX", GET: true }));
    await step("set EX", () => r.set("e", "v", { expiration: { type: "EX", value: 100 } }));
    await step("ttl", async () => within(await r.ttl("e"), 99, 100));
    await step("set KEEPTTL", async () => {
      await r.set("e", "w", { expiration: "KEEPTTL" });
      return within(await r.pTTL("e"), 90000, 100000);
    });
    await step("set bad expire", () => r.set("e", "v", { expiration: { type: "EX", value: 0 } }));
    await step("setEx", () => r.setEx("se", 50, "v"));
    await step("setNX", () => r.setNX("s", "v"));
    await step("getSet", () => r.getSet("s", "third"));
    await step("getDel", () => r.getDel("s"));
    await step("getEx PERSIST", async () => {
      await r.set("gx", "v", { expiration: { type: "EX", value: 100 } });
      return [await r.getEx("gx", { type: "PERSIST" }), await r.ttl("gx")];
    });
    await step("mSet", () => r.mSet({ k1: "v1", k2: "v2", k3: "v3" }));
    await step("mGet", () => r.mGet(["k1", "k2", "nope", "k3"]));
    await step("mSetNX", () => r.mSetNX({ k1: "x", new: "y" }));
    await step("incr", () => r.incr("n"));
    await step("incrBy", () => r.incrBy("n", 41));
    await step("decrBy", () => r.decrBy("n", 3));
    await step("incrByFloat", () => r.incrByFloat("f", 10.5));
    await step("incr not integer", () => r.incr("k1"));
    await step("append", () => r.append("ap", "abcdef"));
    await step("strLen", () => r.strLen("ap"));
    await step("getRange", () => r.getRange("ap", 1, -2));
    await step("setRange", () => r.setRange("ap", 8, "Z"));
    await step("binary", async () => {
      const key = Buffer.from([0xfe, 0x00, 0x41]);
      await r.set(key, Buffer.from([0, 1, 0xff, 0x0d, 0x0a, 0x80]));
      return r.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).get(key);
    });

    // Keys.
    await step("exists", () => r.exists(["k1", "k2", "nope", "k1"]));
    await step("type", async () => [await r.type("k1"), await r.type("nope")]);
    await step("expire", () => r.expire("k1", 100));
    await step("expire NX", () => r.expire("k1", 200, "NX"));
    await step("expire GT", () => r.expire("k1", 200, "GT"));
    await step("ttl after GT", async () => within(await r.ttl("k1"), 199, 200));
    await step("expireTime", async () =>
      within((await r.expireTime("k1")) - Math.floor(Date.now() / 1000), 198, 201));
    await step("persist", async () => [await r.persist("k1"), await r.ttl("k1"), await r.ttl("nope")]);
    await step("del", () => r.del(["k3", "nope"]));
    await step("unlink", () => r.unlink(["new", "nope"]));
    await step("keys", async () => (await r.keys("k*")).sort());
    await step("scanIterator", async () => {
      for (let i = 0; i < 300; i++) await r.set(`scan:${i}`, String(i));
      const seen = new Set();
      for await (const keys of r.scanIterator({ MATCH: "scan:*", COUNT: 25 })) {
        for (const k of keys) seen.add(k);
      }
      return seen.size;
    });
    await step("dbSize", () => r.dbSize());

    // Pipelines and transactions.
    await step("multi", () => r.multi().set("m", "1").incr("m").incr("ap").get("m").exec());
    await step("pipeline", () => r.multi().set("p", "1").incr("p").get("p").del("p").execAsPipeline());
    await step("watch conflict", async () => {
      const c = await r.duplicate().on("error", () => {}).connect();
      try {
        await c.set("w", "0");
        await c.watch("w");
        await other.set("w", "changed");
        return await c.multi().set("w", "mine").exec();
      } finally {
        c.destroy();
      }
    });
    await step("watch untouched", async () => {
      const c = await r.duplicate().on("error", () => {}).connect();
      try {
        await c.watch("w");
        return await c.multi().incr("n").set("w", "mine").exec();
      } finally {
        c.destroy();
      }
    });

    // Scripts: the defined script runs EVALSHA and falls back to EVAL on NOSCRIPT.
    await step("scriptFlush", () => r.scriptFlush());
    await step("script cas", async () => {
      await r.set("cas", "old");
      return [await r.cas("cas", "old", "new"), await r.cas("cas", "old", "newer"), await r.get("cas")];
    });
    await step("script in multi", () => r.multi().cas("cas", "new", "m1").get("cas").exec());
    await step("eval", () =>
      r.eval("return {1, 'two', {3, 'four'}, redis.status_reply('OK'), false}", { keys: [], arguments: [] }));
    await step("eval error", () => r.eval("return redis.call('INCR', KEYS[1])", { keys: ["ap"] }));

    // Errors clients parse.
    await step("unknown command", () => r.sendCommand(["NOSUCHCOMMAND", "a"]));
    await step("wrong arity", () => r.sendCommand(["GET"]));
    await step("flushDb", () => r.flushDb());
    await step("dbSize after", () => r.dbSize());
  } finally {
    r.destroy();
    other.destroy();
  }
}

transcript.finish(
  (async () => {
    await run(2);
    await run(3);
  })(),
  "check-node-redis.js",
);
