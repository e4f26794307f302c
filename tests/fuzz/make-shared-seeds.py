#!/usr/bin/env python3
"""make-shared-seeds.py — write the hand-written seed inputs (seed-*) of the shared corpus.

    python3 tests/fuzz/make-shared-seeds.py

Rewrites tests/fuzz/corpus/shared/seed-* (idempotent): byte streams as a Redis server
sends them (RESP) — every reply shape the shared-state scripts produce (src/shared_lua.c),
each with its broken variants — plus raw key components and breaker entries.  Inputs
libFuzzer found are named by their SHA-1 and are left alone; `make fuzz-merge` always
keeps the seed-* files."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
D = os.path.join(HERE, "corpus", "shared")


def enc(x):
    """RESP-encode: int -> integer, str -> bulk string, bytes -> bulk, None -> nil,
    list -> array, ('+', s) status, ('-', s) error, ('raw', b) verbatim."""
    if isinstance(x, tuple):
        kind, s = x
        if kind == "raw":
            return s if isinstance(s, bytes) else s.encode()
        return (kind + s + "\r\n").encode()
    if x is None:
        return b"$-1\r\n"
    if isinstance(x, bool):
        x = int(x)
    if isinstance(x, int):
        return b":%d\r\n" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"$%d\r\n%s\r\n" % (len(x), x)
    if isinstance(x, list):
        return b"*%d\r\n" % len(x) + b"".join(enc(e) for e in x)
    raise TypeError(x)


def w(name, *replies):
    data = b"".join(r if isinstance(r, bytes) else enc(r) for r in replies)
    with open(os.path.join(D, "seed-" + name), "wb") as f:
        f.write(data)


def raw(name, data):
    with open(os.path.join(D, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


NOW = 1764620000000
MAX = 2**53 - 1


def win(*triples):
    out = []
    for t in triples:
        out.extend(t)
    return out


def main():
    os.makedirs(D, exist_ok=True)
    # budget scripts: {code, idx, now, spent, reserved, host per window}
    w("reserve-ok-1.resp", [0, 0, NOW] + win((0, 400000000, 0)))
    w("reserve-ok-3.resp", [0, 0, NOW] + win((4970000000, 20000000, 1000), (1, 2, 3), (0, 0, 0)))
    w("reserve-edquot.resp", [1, 1, NOW] + win((4970000000, 20000000, 4970000000)))
    w("reserve-eagain-2.resp", [2, 2, NOW] + win((1, 0, 1), (450000000, 500000000, 0)))
    w("reserve-code-idx-mismatch.resp", [0, 1, NOW] + win((0, 0, 0)))
    w("reserve-idx-too-big.resp", [1, 5, NOW] + win((0, 0, 0)))
    w("reserve-code-3.resp", [3, 1, NOW] + win((0, 0, 0)))
    w("reserve-negative-reserved.resp", [0, 0, NOW] + win((5, -7, 5)))
    w("reserve-too-big.resp", [0, 0, NOW] + win((MAX + 1, 0, 0)))
    w("reserve-max.resp", [0, 0, MAX] + win((MAX, MAX, MAX)))
    w("reserve-short.resp", [0, 0, NOW, 1, 2])
    w("reserve-strings.resp", ["0", "0", str(NOW), "1", "2", "3"])
    w("reserve-nested.resp", [0, 0, NOW, [1], 2, 3])
    w("reserve-nil-elements.resp", [0, None, NOW, None, 2, 3])
    w("settle-ok.resp", [0, 0, NOW] + win((250000000, 500000000, 250000000), (5, 0, 5)))
    w("settle-dup.resp", [1, 0, NOW] + win((250000000, 0, 250000000)))
    w("release.resp", [0, 0, NOW] + win((0, 0, 0), (1, 1, 1)))
    w("floor.resp", [0, 0, NOW] + win((3000000000, 0, 3000000000)))
    w("budget-many-windows.resp", [0, 0, NOW] + win(*[(i, i, i) for i in range(70)]))
    # limits
    w("rate.resp", [149500000, 1764620149500000])
    w("rate-zero.resp", [0, 1764620000000000])
    w("rate-negative.resp", [-1, 5])
    w("rate-three.resp", [1, 2, 3])
    w("slot-granted.resp", [1, 3, 0])
    w("slot-full.resp", [0, 3, 59990])
    w("slot-bad.resp", [2, -1, 0])
    w("set-nx-ok.resp", ("+", "OK"))
    w("set-nx-nil.resp", None)
    w("set-nx-bulk-ok.resp", "OK")
    w("integer.resp", 1, 0, -5, MAX)
    w("integer-huge.resp", ("raw", b":99999999999999999999999\r\n"))
    # connection
    w("time.resp", ["1764620000", "123456"])
    w("time-bad.resp", ["17646x0000", "123456"], ["1764620000", "1000000"], ["", "1"],
      [1764620000, 5], ["99999999999", "0"])
    w("sha.resp", "0123456789abcdef0123456789ABCDEF01234567")
    w("sha-bad.resp", "0123456789abcdef0123456789abcdef0123456g", "abc")
    w("status.resp", ("+", "OK"), ("+", "PONG"), ("+", "QUEUED"), ("+", ""))
    w("errors.resp", ("-", "NOSCRIPT No matching script. Please use EVAL."),
      ("-", "OOM command not allowed when used memory > 'maxmemory'. script: abc, on @user_script:59."),
      ("-", "WRONGPASS invalid username-password pair or user is disabled."),
      ("-", "NOAUTH Authentication required."), ("-", "ERR routefs reserve: bad arguments"),
      ("-", "BUSY Redis is busy running a script."), ("-", "READONLY You can't write against a read only replica."),
      ("-", ""), ("-", "NOSCRIP"))
    w("error-control-chars.resp", ("raw", b"-ERR a\x01b\x7fc\x1bd\r\n"))
    # sync: {now, {field, value, ...}, {totals}}
    brk = ["or%3A1", "1|%d|%d|host-a|HTTP 503 upstream" % (NOW + 5000, NOW),
           "or%3A1:meta/llama%3Afree%7Cx", "1|%d|%d|host-b|404" % (NOW + 9000, NOW - 10),
           "p9", "1|%d|1|other-host|by hand" % (NOW + 60000)]
    w("sync.resp", [NOW, brk, win((1, 2, 3), (4, 5, 6))])
    w("sync-empty.resp", [NOW, [], []])
    w("sync-bad-entries.resp", [NOW, [
        "bad%ZZ", "1|99999999999999|1|h|r",
        "good", "garbage",
        "", "1|1|1|h|r",
        "p:", "1|1|1|h|r",
        "p", "0|1|1|h|r",
        "p", "1|1|1||r",
        "p", "1|1|1|h h|r",
        "p", "1||1|h|r",
        "p", "1|99999999999999999999|1|h|r",
        "p", "1|1|1|h",
        "p%00", "1|1|1|h|r",
        "p%0A", "1|1|1|h|r\x01\x02",
        "p", "1|5|6|" + "h" * 129 + "|r",
        "p", "1|5|6|h|" + "r|" * 200,
        7, "1|1|1|h|r",
        "p", None,
    ], win((0, 0, 0))])
    w("sync-odd-pairs.resp", [NOW, ["a", "1|1|1|h|r", "b"], []])
    w("sync-bad-totals.resp", [NOW, [], [1, 2]], [NOW, [], [1, -2, 3]], [NOW, [], ["1", 2, 3]])
    w("sync-not-arrays.resp", [NOW, "x", []], [NOW, [], None], ["now", [], []], [NOW, []])
    w("sync-long-names.resp", [NOW, ["a" * 256, "1|1|1|h|r", "a" * 257, "1|1|1|h|r",
                                     "%41" * 256, "1|1|1|h|r", "p:" + "m" * 300, "1|1|1|h|r"], []])
    # protocol oddities
    w("nil-array.resp", ("raw", b"*-1\r\n"))
    w("empty-array.resp", [])
    w("deep-nesting.resp", ("raw", b"*1\r\n" * 12 + b":1\r\n"))
    w("huge-array.resp", ("raw", b"*2147483647\r\n:1\r\n"))
    w("huge-bulk.resp", ("raw", b"$2147483647\r\nabc"))
    w("negative-bulk.resp", ("raw", b"$-5\r\n"))
    w("bad-type.resp", ("raw", b"!3\r\nabc\r\n"))
    w("truncated.resp", ("raw", enc([0, 0, NOW, 1, 2, 3])[:-5]))
    w("no-crlf.resp", ("raw", b":12\n:13\r\n"))
    w("many-replies.resp", *([[0, 0, NOW, 1, 2, 3]] * 40))
    w("mixed.resp", [("+", "OK"), None, 5, "s", [("-", "ERR x")]])
    # raw strings: key components and breaker entries
    raw("field-provider.txt", "openrouter")
    raw("field-model.txt", "or%3A1:meta-llama/llama-3-8b-instruct%3Afree")
    raw("field-bad-escape.txt", "a%4:b")
    raw("field-nul.txt", b"a%00b")
    raw("value-ok.txt", "1|1764620005000|1764620000000|host-a|HTTP 503")
    raw("value-bad.txt", "1|x|1|h|r")
    raw("escape-all-bytes.bin", bytes(range(256)))
    raw("escape-utf8.txt", "meta/llama:free|x ü ✓")


if __name__ == "__main__":
    main()
