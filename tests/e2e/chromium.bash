# shellcheck shell=bash
# Headless Chromium for the report.html tests (report.bats, events.bats): a bounded run,
# a skip (or, on CI, a failure) when it cannot start, the page's console messages, and a
# check that a screenshot shows the charts.  Needs helpers.bash ($RFS_DIR).

# chromium_run ARGS... — one bounded headless run, its own profile, logging to stderr.
chromium_run() {
    local profile
    profile="$(mktemp -d "$RFS_DIR/chromium.XXXXXX")"
    timeout -k 5 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-default-apps --disable-extensions --user-data-dir="$profile" \
        --enable-logging=stderr --v=0 "$@" </dev/null 3>&-
    local rc=$?
    rm -rf "$profile"
    return $rc
}

# need_chromium — skip when Chromium cannot start here (with the reason); on CI it must.
need_chromium() {
    local why=""
    if ! command -v chromium >/dev/null 2>&1; then
        why="chromium is not installed (sh tests/install-deps.sh)"
    elif ! chromium_run --dump-dom "data:text/html,<p>ok</p>" >"$RFS_DIR/probe.out" 2>"$RFS_DIR/probe.err" ||
        ! grep -q '<p>ok</p>' "$RFS_DIR/probe.out"; then
        why="chromium cannot start: $(grep -v '^\s*$' "$RFS_DIR/probe.err" | tail -n 1)"
    fi
    [ -z "$why" ] && return 0
    if [ -n "${CI:-}" ]; then
        echo "$why (CI installs chromium: this must not be skipped)" >&2
        return 1
    fi
    skip "$why"
}

# console_messages STDERR — the page's console output in a Chromium log.  The page runs no
# script, so any message (a CSP violation, a blocked load, an error) is a fault.  Chromium
# logs every console message as "INFO:CONSOLE", whatever its level, so all of them count.
console_messages() {
    grep -E ':CONSOLE[:(]' "$1"
}

# png_check FILE R,G,B... — the PNG decodes, is not one colour, and has at least 40 pixels
# of each given colour (the charts' fills, which only an SVG that was drawn can produce).
png_check() {
    python3 - "$@" <<'PY'
import struct, sys, zlib
path, colours = sys.argv[1], [tuple(int(v) for v in c.split(",")) for c in sys.argv[2:]]
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and ctype in (2, 6), "unexpected PNG format %d/%d" % (depth, ctype)
        bpp = 3 if ctype == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
counts = {}
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        px = tuple(line[x:x + 3])
        counts[px] = counts.get(px, 0) + 1
    prev = line
assert len(counts) > 1, "blank screenshot: every pixel is %r" % (next(iter(counts)),)
top = max(counts.values())
print("%dx%d, %d colours, the commonest covers %.0f%%" % (w, h, len(counts), 100.0 * top / (w * h)))
assert top < 0.98 * w * h, "nearly blank screenshot"
for c in colours:
    assert counts.get(c, 0) >= 40, "colour %r drawn on only %d pixels" % (c, counts.get(c, 0))
PY
}
