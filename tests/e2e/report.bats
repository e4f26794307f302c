#!/usr/bin/env bats
# report.html through a real browser: `routefs report STATE` on a state database built with
# sqlite3 (the store's DDL), drawn by headless Chromium: a screenshot that is not blank and
# shows the charts' colours, a DOM with the SVG charts and the numbers, no console message,
# at desktop and phone widths.  No mount is needed.

load helpers
load chromium

setup() {
    RFS_DIR="$(mktemp -d "$RFS_E2E_ROOT/routefs-report.XXXXXX")"
    STATE="$RFS_DIR/state"
    mkdir -p "$STATE"
    export RFS_DIR STATE
}

teardown() {
    [ -n "${RFS_DIR:-}" ] && [ -d "$RFS_DIR" ] && rm -rf --one-file-system "$RFS_DIR"
    return 0
}

# The state store's DDL, as in /work/notes/schema.md and tests/unit/test_report.c
# (src/store_schema.c will be its source).
schema_sql() {
    cat <<'SQL'
CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dirs(  path TEXT PRIMARY KEY, parent TEXT NOT NULL, name TEXT NOT NULL,  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dirs_by_parent ON dirs(parent);
CREATE TABLE IF NOT EXISTS prompts(  id INTEGER PRIMARY KEY,  path TEXT NOT NULL UNIQUE, dir TEXT NOT NULL, name TEXT NOT NULL,  gen INTEGER NOT NULL, state INTEGER NOT NULL, writing INTEGER NOT NULL DEFAULT 0,  size INTEGER NOT NULL, hash INTEGER NOT NULL,  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,  atime_ns INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,  created_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL DEFAULT 0,  park_count INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,  sent INTEGER NOT NULL DEFAULT 0, out_size INTEGER NOT NULL DEFAULT 0,  meta TEXT, err TEXT, out BLOB, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS prompts_by_dir ON prompts(dir);
CREATE UNIQUE INDEX IF NOT EXISTS prompts_by_gen ON prompts(gen);
CREATE INDEX IF NOT EXISTS prompts_unfinished ON prompts(state) WHERE state <= 2 OR writing;
CREATE TABLE IF NOT EXISTS ledger(  id INTEGER PRIMARY KEY, ref TEXT NOT NULL, at_ms INTEGER NOT NULL,  path TEXT, tier TEXT NOT NULL, tag TEXT, provider TEXT NOT NULL, model TEXT NOT NULL,  upstream TEXT, cost_nusd INTEGER, estimated INTEGER NOT NULL DEFAULT 0, note TEXT,  prompt_tokens INTEGER, completion_tokens INTEGER, host TEXT);
CREATE INDEX IF NOT EXISTS ledger_by_time ON ledger(at_ms);
CREATE TABLE IF NOT EXISTS spend_days(  day INTEGER NOT NULL, tier TEXT NOT NULL, tag TEXT NOT NULL, provider TEXT NOT NULL,  model TEXT NOT NULL, upstream TEXT NOT NULL,  nusd INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,  unpriced INTEGER NOT NULL DEFAULT 0, estimated INTEGER NOT NULL DEFAULT 0,  PRIMARY KEY(day, tier, tag, provider, model, upstream)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activity(  seq INTEGER PRIMARY KEY, off INTEGER NOT NULL, at_ms INTEGER NOT NULL,  line TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS activity_by_off ON activity(off);
CREATE TABLE IF NOT EXISTS provider_days(  day INTEGER NOT NULL, provider TEXT NOT NULL,  requests INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,  fallbacks INTEGER NOT NULL DEFAULT 0, latency_ms_sum INTEGER NOT NULL DEFAULT 0,  b0 INTEGER NOT NULL DEFAULT 0, b1 INTEGER NOT NULL DEFAULT 0,  b2 INTEGER NOT NULL DEFAULT 0, b3 INTEGER NOT NULL DEFAULT 0,  b4 INTEGER NOT NULL DEFAULT 0, b5 INTEGER NOT NULL DEFAULT 0,  b6 INTEGER NOT NULL DEFAULT 0, b7 INTEGER NOT NULL DEFAULT 0,  b8 INTEGER NOT NULL DEFAULT 0, b9 INTEGER NOT NULL DEFAULT 0,  PRIMARY KEY(day, provider)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(  id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,  provider TEXT, model TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS events_by_time ON events(at_ms);
CREATE TABLE IF NOT EXISTS prices(  model TEXT NOT NULL, provider TEXT NOT NULL, source TEXT NOT NULL,  prompt_per_m REAL NOT NULL, completion_per_m REAL NOT NULL,  request_usd REAL NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,  PRIMARY KEY(model, provider, source)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv(  key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;
SQL
}

# make_state — STATE/routefs.db (WAL, like the daemon's) with spend today (fast $1.50,
# slow $0.25) and on earlier days, providers, a breaker opening, a parked and a failed
# job, and a model name that is an HTML script tag; STATE/config.json with caps.
make_state() {
    local now day
    now=$(now_ms)
    day=$((now / 86400000))
    {
        echo "PRAGMA journal_mode=WAL;"
        schema_sql
        cat <<SQL
BEGIN;
INSERT INTO spend_days VALUES
  ($day, 'fast', '', 'openrouter', 'openai/gpt-4o', 'OpenAI', 1500000000, 3, 0, 0),
  ($day, 'slow', 'news', 'local', '<script>alert(1)</script>', '', 250000000, 1, 0, 1),
  ($((day - 3)), 'fast', '', 'openrouter', 'anthropic/claude', 'Anthropic', 3000000000, 2, 0, 0),
  ($((day - 9)), 'slow', '', 'local', 'llama', '', 2000000000, 4, 0, 0);
INSERT INTO ledger(ref, at_ms, path, tier, tag, provider, model, upstream, cost_nusd, estimated) VALUES
  ('r1', $((now - 3600000)), 'fast/a.txt', 'fast', NULL, 'openrouter', 'openai/gpt-4o', 'OpenAI', 1500000000, 0),
  ('r2', $((now - 60000)), 'slow/news/c.txt', 'slow', 'news', 'local', '<script>alert(1)</script>', NULL, 250000000, 1),
  ('r3', $((now - 3 * 86400000)), 'fast/big.txt', 'fast', NULL, 'openrouter', 'anthropic/claude', 'Anthropic', 3000000000, 0);
INSERT INTO provider_days VALUES
  ($day, 'openrouter', 8, 2, 1, 1600, 4, 0, 4, 0, 0, 0, 0, 0, 0, 0),
  ($((day - 2)), 'local', 5, 0, 0, 9000, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0);
INSERT INTO events(at_ms, kind, provider, model, detail) VALUES
  ($((now - 600000)), 'breaker_open', 'openrouter', 'openai/gpt-4o', '5 consecutive failures: HTTP 502');
INSERT INTO prompts(path, dir, name, gen, state, size, hash, mode, uid, gid, atime_ns, mtime_ns,
                    ctime_ns, created_ms, park_count, next_attempt_ms, err, data) VALUES
  ('fast/parked.txt', 'fast', 'parked.txt', 1, 1, 1, 0, 420, 0, 0, 0, 0, 0, 0, 1, $((now + 60000)),
   'all 2 hops failed: HTTP 503', x'41'),
  ('fast/failed.txt', 'fast', 'failed.txt', 2, 4, 1, 0, 420, 0, 0, 0, 0, 0, 0, 0, 0,
   'HTTP 400: <b>bad</b> request', x'41');
COMMIT;
SQL
    } | sqlite3 "$STATE/routefs.db" >/dev/null
    cat >"$STATE/config.json" <<'JSON'
{"providers": {"openrouter": {"base_url": "http://127.0.0.1:9/v1"}},
 "budget": {"daily_usd": 2, "monthly_usd": 100},
 "tiers": {"fast": {"route": ["openai/gpt-4o"]}}}
JSON
}

@test "routefs report renders a self-contained page that Chromium draws without console messages" {
    need_chromium
    make_state
    rfs_cli report "$STATE" >"$RFS_DIR/report.html"
    [ -s "$RFS_DIR/report.html" ]
    # self-contained: no script, nothing that leaves the file; the hostile model is text
    run ! grep -qi '<script' "$RFS_DIR/report.html"
    run ! grep -qiE '(src|href)=|url\(|@import|https?://' "$RFS_DIR/report.html"
    grep -qF '&lt;script&gt;alert(1)&lt;/script&gt;' "$RFS_DIR/report.html"

    # desktop width: a real picture with the first tier's bar colour (#4e79a7), the gauge's
    # warning orange (#ef6c00: today is $1.75 of a $2.00 cap, 88 %) and the failures red
    run chromium_run --window-size=1280,2000 --hide-scrollbars \
        --screenshot="$RFS_DIR/desktop.png" "file://$RFS_DIR/report.html"
    echo "$output" >"$RFS_DIR/desktop.err"
    assert_success
    [ -s "$RFS_DIR/desktop.png" ]
    run png_check "$RFS_DIR/desktop.png" 78,121,167 239,108,0 198,40,40
    echo "$output"
    assert_success
    run console_messages "$RFS_DIR/desktop.err"
    echo "$output"
    assert_failure

    # phone width: still drawn (the chart scrolls inside its card)
    run chromium_run --window-size=390,1600 --hide-scrollbars \
        --screenshot="$RFS_DIR/phone.png" "file://$RFS_DIR/report.html"
    echo "$output" >"$RFS_DIR/phone.err"
    assert_success
    run png_check "$RFS_DIR/phone.png" 78,121,167
    echo "$output"
    assert_success
    run console_messages "$RFS_DIR/phone.err"
    assert_failure
}

@test "report.html's DOM in Chromium has the charts, the numbers and escaped strings" {
    need_chromium
    make_state
    rfs_cli report "$STATE" --days 14 >"$RFS_DIR/report.html"
    chromium_run --dump-dom "file://$RFS_DIR/report.html" >"$RFS_DIR/dom.html" 2>"$RFS_DIR/dom.err"
    dom="$RFS_DIR/dom.html"
    grep -q '<svg class="chart" id="daily-spend"' "$dom"
    # four (day, tier) cells with spend in 14 days: today fast + slow, 3 and 9 days ago
    [ "$(grep -o '<rect class="bar"' "$dom" | wc -l)" -eq 4 ]
    grep -q 'class="cap-line"' "$dom"
    grep -q 'daily cap \$2.00' "$dom"
    grep -q 'id="gauge-today"' "$dom"
    grep -q 'id="gauge-month"' "$dom"
    [ "$(grep -o '<svg class="chart provider-days"' "$dom" | wc -l)" -eq 2 ]
    grep -q 'Caps in force: daily \$2.00, monthly \$100.00' "$dom"
    grep -q '\$1.75 <span class="meta">of \$2.00</span>' "$dom"
    grep -q '88 % of the cap' "$dom"
    grep -q '\$6.75' "$dom"                       # all time
    grep -q '25.0 %' "$dom"                       # openrouter's failure rate
    grep -q '≈ 475 ms' "$dom"                     # its p95
    grep -q '5 consecutive failures: HTTP 502' "$dom"
    grep -q 'fast/parked.txt' "$dom"
    grep -q 'HTTP 400: &lt;b&gt;bad&lt;/b&gt; request' "$dom"
    grep -q 'id="latency-note"' "$dom"
    # the browser's own parse of the page has no script element and no <b> from the data
    run ! grep -qi '<script' "$dom"
    run ! grep -q '<b>' "$dom"
    grep -qF '&lt;script&gt;alert(1)&lt;/script&gt;' "$dom"
    run console_messages "$RFS_DIR/dom.err"
    assert_failure
}

@test "an empty state database renders the no-spend page" {
    need_chromium
    schema_sql | sqlite3 "$STATE/routefs.db"
    rfs_cli report "$STATE" >"$RFS_DIR/report.html"
    chromium_run --dump-dom "file://$RFS_DIR/report.html" >"$RFS_DIR/dom.html" 2>"$RFS_DIR/dom.err"
    grep -q 'id="no-spend"' "$RFS_DIR/dom.html"
    grep -q 'No spend yet.' "$RFS_DIR/dom.html"
    grep -q 'Caps in force: daily none, monthly none' "$RFS_DIR/dom.html"
    run ! grep -q 'id="daily-spend"' "$RFS_DIR/dom.html"
    run console_messages "$RFS_DIR/dom.err"
    assert_failure
}

@test "the console check catches a page that breaks the rules" {
    need_chromium
    # the same checks on a page with a script and a remote image must find them
    printf '%s' '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src '"'none'"'">' \
        '<img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script>' \
        >"$RFS_DIR/bad.html"
    chromium_run --dump-dom "file://$RFS_DIR/bad.html" >/dev/null 2>"$RFS_DIR/bad.err"
    run console_messages "$RFS_DIR/bad.err"
    echo "$output"
    assert_success
    # and a blank picture is refused
    python3 -c 'import struct, zlib
w, h = 64, 64
raw = b"".join(b"\x00" + b"\xff\xff\xff" * w for _ in range(h))
def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
open("'"$RFS_DIR"'/blank.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))'
    run png_check "$RFS_DIR/blank.png"
    assert_failure
}

@test "routefs report: usage errors, a missing database, --config caps, read-only" {
    run rfs_cli report
    [ "$status" -eq 2 ]
    run rfs_cli report --days 0 "$STATE"
    [ "$status" -eq 2 ]
    run rfs_cli report "$STATE" --bogus
    [ "$status" -eq 2 ]
    run rfs_cli report --help
    assert_success
    assert_output --partial 'usage: routefs report STATE'
    run rfs_cli report "$STATE"
    [ "$status" -eq 1 ]
    assert_output --partial 'routefs.db'
    make_state
    cat >"$RFS_DIR/other.json" <<'JSON'
{"providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}}, "budget": {"daily_usd": 7.5},
 "tiers": {"t": {"route": ["m"]}}}
JSON
    rfs_cli report "$STATE" --config "$RFS_DIR/other.json" >"$RFS_DIR/r.html"
    grep -q 'Caps in force: daily \$7.50, monthly none' "$RFS_DIR/r.html"
    run rfs_cli report "$STATE" --config "$RFS_DIR/missing.json"
    [ "$status" -eq 1 ]
    # read-only: the database file is untouched, even when it cannot be written
    sum_before="$(sha256sum "$STATE/routefs.db")"
    chmod 0400 "$STATE/routefs.db"
    rfs_cli report "$STATE" >"$RFS_DIR/r.html"
    [ "$(sha256sum "$STATE/routefs.db")" = "$sum_before" ]
    grep -q 'id="daily-spend"' "$RFS_DIR/r.html"
}
