"""Runs redis-py, unchanged, against one server and prints a transcript: one JSON line per step,
its name and what redis-py handed the application (a value, or the exception's class and
message). The test TestRedisPy runs this against a real redis-server and against Vela and
compares the two transcripts line by line, so every step must be deterministic: TTLs are
reported as whether they lie in a range, never as numbers.

Usage: python3 check.py host port
"""

import json
import sys
import time

import redis

host, port = sys.argv[1], int(sys.argv[2])
lines = []


def show(v):
    """Makes what redis-py returned something JSON keeps exactly."""
    if isinstance(v, bytes):
        try:
            return {"bytes": v.decode("utf-8")}
        except UnicodeDecodeError:
            return {"hex": v.hex()}
    if isinstance(v, Exception):
        return {"error": type(v).__name__ + ": " + str(v)}
    if isinstance(v, (list, tuple)):
        return [show(x) for x in v]
    if isinstance(v, set):
        return sorted(show(x) for x in v)
    if isinstance(v, dict):
        return {str(show(k)): show(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, float):
        return {"float": repr(v)}
    return v


def step(name, fn):
    try:
        v = show(fn())
    except redis.RedisError as err:
        v = show(err)
    lines.append(json.dumps([name, v], sort_keys=True))


def within(ttl, lo, hi):
    return "in [%s, %s]" % (lo, hi) if lo <= ttl <= hi else "out of range: %s" % ttl


def main():
    r = redis.Redis(host=host, port=port, socket_timeout=10, client_name="redispy-check")
    text = redis.Redis(host=host, port=port, socket_timeout=10, decode_responses=True)
    other = redis.Redis(host=host, port=port, socket_timeout=10)

    step("ping", r.ping)
    step("flushall", r.flushall)
    step("client_getname", r.client_getname)
    step("client_setname", lambda: r.client_setname("renamed"))
    step("client_getname after", r.client_getname)
    step("echo", lambda: r.echo("hello"))
    step("info keys", lambda: sorted(k for k in r.info("server") if k in ("redis_version", "tcp_port")))
    step("info keyspace", lambda: (r.set("a", 1), r.info("keyspace"))[1])
    step("config get maxmemory", lambda: sorted(r.config_get("maxmemory")))
    step("time is a pair", lambda: [type(x).__name__ for x in r.time()])

    # Strings.
    step("set", lambda: r.set("s", "value"))
    step("get", lambda: r.get("s"))
    step("get decoded", lambda: text.get("s"))
    step("get missing", lambda: r.get("missing"))
    step("set nx", lambda: r.set("s", "x", nx=True))
    step("set xx get", lambda: r.set("s", "second", xx=True, get=True))
    step("set ex", lambda: r.set("e", "v", ex=100))
    step("ttl", lambda: within(r.ttl("e"), 99, 100))
    step("set keepttl", lambda: (r.set("e", "w", keepttl=True), within(r.pttl("e"), 90000, 100000))[1])
    step("set exat", lambda: r.set("at", "v", exat=int(time.time()) + 100))
    step("set bad expire", lambda: r.set("e", "v", ex=0))
    step("setex", lambda: r.setex("se", 50, "v"))
    step("psetex", lambda: r.psetex("pse", 50000, "v"))
    step("setnx", lambda: r.setnx("s", "v"))
    step("getset", lambda: r.getset("s", "third"))
    step("getdel", lambda: r.getdel("s"))
    step("getex", lambda: (r.set("gx", "v"), r.getex("gx", px=100000), within(r.pttl("gx"), 90000, 100000))[1:])
    step("getex persist", lambda: (r.getex("gx", persist=True), r.ttl("gx")))
    step("mset", lambda: r.mset({"k1": "v1", "k2": "v2", "k3": "v3"}))
    step("mget", lambda: r.mget(["k1", "k2", "nope", "k3"]))
    step("msetnx", lambda: r.msetnx({"k1": "x", "new": "y"}))
    step("incr", lambda: r.incr("n"))
    step("incrby", lambda: r.incrby("n", 41))
    step("decr", lambda: r.decr("n"))
    step("decrby", lambda: r.decrby("n", 2))
    step("incrbyfloat", lambda: r.incrbyfloat("f", 10.5))
    step("incrbyfloat negative", lambda: r.incrbyfloat("f", -0.25))
    step("incr not integer", lambda: r.incr("k1"))
    step("incrbyfloat not float", lambda: r.incrbyfloat("k1", 1))
    step("append", lambda: (r.append("ap", "abc"), r.append("ap", "def")))
    step("strlen", lambda: r.strlen("ap"))
    step("getrange", lambda: r.getrange("ap", 1, -2))
    step("setrange", lambda: (r.setrange("ap", 8, "Z"), r.get("ap")))
    step("binary", lambda: (r.set(b"\xfe\x00A", b"\x00\x01\xff\r\n\x80"), r.get(b"\xfe\x00A")))
    step("large value", lambda: (r.set("large", b"x" * (1 << 20)), len(r.get("large"))))
    step("substr", lambda: r.substr("ap", 0, 2))

    # Keys.
    step("exists", lambda: r.exists("k1", "k2", "nope", "k1"))
    step("type", lambda: (r.type("k1"), r.type("nope")))
    step("touch", lambda: r.touch("k1", "nope"))
    step("expire", lambda: r.expire("k1", 100))
    step("expire nx", lambda: r.expire("k1", 200, nx=True))
    step("expire gt", lambda: r.expire("k1", 200, gt=True))
    step("ttl after gt", lambda: within(r.ttl("k1"), 199, 200))
    step("pexpire lt", lambda: r.pexpire("k1", 50000, lt=True))
    step("expiretime", lambda: within(r.expiretime("k1") - int(time.time()), 48, 51))
    step("pexpiretime", lambda: within(r.pexpiretime("k1") - int(time.time() * 1000), 48000, 51000))
    step("persist", lambda: (r.persist("k1"), r.ttl("k1"), r.ttl("nope")))
    step("expireat past", lambda: (r.expireat("k2", 1), r.exists("k2")))
    step("delete", lambda: r.delete("k3", "nope"))
    step("unlink", lambda: r.unlink("new", "nope"))
    step("keys", lambda: sorted(r.keys("k*")))
    for i in range(300):
        r.set("scan:%d" % i, i)
    step("scan_iter", lambda: len(set(r.scan_iter(match="scan:*", count=25))))
    step("scan_iter type", lambda: sorted(r.scan_iter(match="scan:1?", count=1000, _type="string")))
    step("dbsize", r.dbsize)

    # Pipelines and transactions.
    def pipeline(transaction):
        p = r.pipeline(transaction=transaction)
        p.set("p", 1).incr("p").get("p").incr("k1").delete("p")
        return p.execute(raise_on_error=False)

    step("pipeline", lambda: pipeline(False))
    step("transaction", lambda: pipeline(True))

    def syntax_error():
        p = r.pipeline()
        p.set("m", 1)
        p.execute_command("SET", "m")
        return p.execute()

    step("transaction syntax error", syntax_error)

    def watched(conflict):
        r.set("w", "0")
        with r.pipeline() as p:
            p.watch("w")
            if conflict:
                other.set("w", "changed")
            p.multi()
            p.set("w", "mine")
            p.incr("n")
            return p.execute()

    step("watch untouched", lambda: watched(False))
    step("watch conflict", lambda: watched(True))
    step("transaction helper", lambda: r.transaction(lambda p: (p.multi(), p.incr("n")), "n"))

    # Scripts: register_script runs EVALSHA and loads the script on NOSCRIPT.
    step("script_flush", r.script_flush)
    cas = r.register_script(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2]) end return false")
    step("script cas hit", lambda: (r.set("cas", "old"), cas(keys=["cas"], args=["old", "new"]), r.get("cas"))[1:])
    step("script cas miss", lambda: cas(keys=["cas"], args=["old", "newer"]))

    def script_pipeline():
        p = r.pipeline()
        cas(keys=["cas"], args=["new", "p1"], client=p)
        cas(keys=["cas"], args=["p1", "p2"], client=p)
        p.get("cas")
        return p.execute()

    step("script in a pipeline", script_pipeline)
    step("eval table", lambda: r.eval("return {1, 'two', {3, 'four'}, redis.status_reply('OK'), false}", 0))
    step("eval error", lambda: r.eval("return redis.call('INCR', KEYS[1])", 1, "ap"))
    step("eval error_reply", lambda: r.eval("return redis.error_reply('MY own')", 0))
    step("evalsha unknown", lambda: r.evalsha("f" * 40, 0))
    step("script_load exists", lambda: (lambda sha: (sha, r.script_exists(sha, "0" * 40)))(r.script_load("return 1")))

    # Errors clients parse.
    step("unknown command", lambda: r.execute_command("NOSUCHCOMMAND", "a"))
    step("wrong arity", lambda: r.execute_command("GET"))
    step("not an integer", lambda: r.execute_command("EXPIRE", "k1", "soon"))
    step("flushdb", r.flushdb)
    step("dbsize after", r.dbsize)


main()
print("\n".join(lines))
