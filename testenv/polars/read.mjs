#!/usr/bin/env node
// Scans tierd's cold Parquet files with nodejs-polars and prints what Polars
// makes of them as JSON, so Go tests can check what an analyst using Polars
// sees: the Hive partition columns (stream, date) and their types.
//
//   node testenv/polars/read.mjs SOURCE                 scanParquet(SOURCE) with default settings
//   node testenv/polars/read.mjs --string-hive SOURCE   the same with hiveSchema {stream: String, date: Date}
//   node testenv/polars/read.mjs --install              install nodejs-polars into the cache, and nothing else
//
// SOURCE is a directory (Polars then reads its Hive partitions by default)
// or a glob. Output: one JSON object on stdout,
//   {"schema": {"column": "DataType", ...},
//    "rows": [{"stream": <as Polars typed it>, "date": "YYYY-MM-DD",
//              "ts_date": "YYYY-MM-DD" (the UTC day of ts), "offset": "N"}, ...]}
// rows ordered by stream (as text), then offset. Integers are printed as
// decimal strings when they are bigints (JSON numbers lose precision past
// 2^53); other values as Polars gives them (a stream Polars typed Int64
// shows as a number, Float64 NaN as null).
//
// nodejs-polars comes from npm, pinned to an exact version in package.json
// next to this script, installed with `npm install --prefix` into
// <repo>/.cache/polars (ignored by git) on first use and reused afterwards;
// a changed package.json triggers a reinstall. Its native binding is a
// platform package (nodejs-polars-linux-x64-gnu, ...) that npm skips as an
// optional dependency on Node.js older than 22 (its "engines" field), so
// the script installs the one for this platform explicitly, at the same
// version; it works on Node.js 20. No lock file (it would hold only this
// machine's platform binary). Install output goes to stderr; a failed
// install exits non-zero so the calling test fails with the reason.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const cacheDir = process.env.TIERD_POLARS_DIR || path.resolve(here, "..", "..", ".cache", "polars");

// binding is the npm package of Polars' native code for this platform.
function binding(version) {
  let abi = "";
  if (process.platform === "linux") {
    abi = process.report?.getReport()?.header?.glibcVersionRuntime ? "-gnu" : "-musl";
  } else if (process.platform === "win32") {
    abi = "-msvc";
  }
  return `nodejs-polars-${process.platform}-${process.arch}${abi}@${version}`;
}

function installed() {
  const want = readFileSync(path.join(here, "package.json"), "utf8");
  const lock = path.join(cacheDir, "package.json");
  return (
    existsSync(path.join(cacheDir, "node_modules", "nodejs-polars", "package.json")) &&
    existsSync(lock) &&
    readFileSync(lock, "utf8") === want
  );
}

function install() {
  mkdirSync(cacheDir, { recursive: true });
  const deps = JSON.parse(readFileSync(path.join(here, "package.json"), "utf8")).dependencies;
  const version = deps["nodejs-polars"];
  const r = spawnSync(
    "npm",
    ["install", "--no-audit", "--no-fund", "--no-save", "--prefix", cacheDir, `nodejs-polars@${version}`, binding(version)],
    // npm's stdout goes to our stderr: stdout carries only the JSON answer.
    { cwd: cacheDir, stdio: ["ignore", 2, 2] },
  );
  if (r.error || r.status !== 0) {
    console.error(`polars: npm install in ${cacheDir} failed: ${r.error ?? "exit status " + r.status}`);
    process.exit(3);
  }
  // Written last: its presence with the same content marks a finished install.
  copyFileSync(path.join(here, "package.json"), path.join(cacheDir, "package.json"));
}

// day renders a JS Date (Polars' Date and Datetime values) as its UTC day.
function day(v) {
  return v instanceof Date ? v.toISOString().slice(0, 10) : v;
}

function main() {
  const args = process.argv.slice(2);
  let stringHive = false;
  if (args[0] === "--install") {
    // Install only (tests that run their own Polars scripts call this).
    if (!installed()) {
      install();
    }
    return;
  }
  if (args[0] === "--string-hive") {
    stringHive = true;
    args.shift();
  }
  if (args.length !== 1) {
    console.error("usage: read.mjs [--string-hive] SOURCE");
    process.exit(2);
  }
  if (!installed()) {
    install();
  }
  const require = createRequire(path.join(cacheDir, "package.json"));
  const pl = require("nodejs-polars");
  const opts = stringHive ? { hiveSchema: { stream: pl.String, date: pl.Date } } : {};
  const df = pl
    .scanParquet(args[0], opts)
    .select(pl.col("stream"), pl.col("date"), pl.col("ts"), pl.col("offset"))
    .collectSync();
  const schema = {};
  for (const [name, dtype] of Object.entries(df.schema)) {
    schema[name] = String(dtype).replace(/^DataType\((.*)\)$/, "$1");
  }
  const rows = df.toRecords().map((r) => ({
    stream: r.stream,
    date: day(r.date),
    ts_date: day(r.ts),
    offset: r.offset,
  }));
  rows.sort((a, b) => {
    const sa = String(a.stream);
    const sb = String(b.stream);
    if (sa !== sb) {
      return sa < sb ? -1 : 1;
    }
    return Number(BigInt(a.offset) - BigInt(b.offset));
  });
  process.stdout.write(JSON.stringify({ schema, rows }, (_, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
}

try {
  main();
} catch (e) {
  console.error(`polars: ${e?.stack ?? e}`);
  process.exit(1);
}
