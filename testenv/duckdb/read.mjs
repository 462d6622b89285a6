#!/usr/bin/env node
// Reads Parquet files with DuckDB and prints the result as JSON, so Go tests
// can check that a standard engine sees the rows tierd wrote.
//
//   node testenv/duckdb/read.mjs FILE.parquet          rows of FILE in tierd's columns
//   node testenv/duckdb/read.mjs --sql 'SQL'           the rows of any query
//   node testenv/duckdb/read.mjs --table --sql 'SQL'   the same as a table for people
//                                                      (what scripts/duckdb runs)
//
// Output: one JSON array of row objects on stdout. Integers and timestamps are
// printed as decimal strings (JSON numbers lose precision past 2^53), value
// bytes as upper-case hex. With --table: aligned columns, one row a line, then
// a line with the row count.
//
// DuckDB comes from npm (@duckdb/node-api, pinned to an exact version in
// package.json next to this script; it pins its native bindings exactly too).
// When it is missing, the script installs it with `npm install --prefix`
// into <repo>/.cache/duckdb (ignored by git) and reuses that install
// afterwards; a changed package.json triggers a reinstall. No lock file: npm
// writes one holding only this machine's platform binary, which `npm ci`
// then rejects elsewhere. Install output goes to stderr; a failed
// install exits non-zero so the calling test fails with the reason.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const cacheDir = process.env.TIERD_DUCKDB_DIR || path.resolve(here, "..", "..", ".cache", "duckdb");

function installed() {
  const want = readFileSync(path.join(here, "package.json"), "utf8");
  const lock = path.join(cacheDir, "package.json");
  return (
    existsSync(path.join(cacheDir, "node_modules", "@duckdb", "node-api", "package.json")) &&
    existsSync(lock) &&
    readFileSync(lock, "utf8") === want
  );
}

function install() {
  mkdirSync(cacheDir, { recursive: true });
  const deps = JSON.parse(readFileSync(path.join(here, "package.json"), "utf8")).dependencies;
  const [name, version] = Object.entries(deps)[0];
  const pkg = { name, version };
  const r = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--no-save", "--prefix", cacheDir, `${pkg.name}@${pkg.version}`], {
    cwd: cacheDir,
    // npm's stdout goes to our stderr: stdout carries only the JSON answer.
    stdio: ["ignore", 2, 2],
  });
  if (r.error || r.status !== 0) {
    console.error(`duckdb: npm install in ${cacheDir} failed: ${r.error ?? "exit status " + r.status}`);
    process.exit(3);
  }
  // Written last: its presence with the same content marks a finished install.
  copyFileSync(path.join(here, "package.json"), path.join(cacheDir, "package.json"));
}

async function main() {
  const args = process.argv.slice(2);
  const table = args[0] === "--table";
  if (table) {
    args.shift();
  }
  let sql;
  if (args.length === 2 && args[0] === "--sql") {
    sql = args[1];
  } else if (args.length === 1) {
    const file = args[0].replaceAll("'", "''");
    sql = `SELECT "offset"::VARCHAR AS "offset",
                  epoch_ns(ts)::VARCHAR AS ts_ns,
                  typeof(ts) AS ts_type,
                  key,
                  tags,
                  hex(value) AS value_hex
             FROM read_parquet('${file}') ORDER BY "offset"`;
  } else {
    console.error("usage: read.mjs FILE.parquet | read.mjs [--table] --sql 'QUERY'");
    process.exit(2);
  }
  if (!installed()) {
    install();
  }
  const require = createRequire(path.join(cacheDir, "package.json"));
  const { DuckDBInstance } = await import(pathToFileURL(require.resolve("@duckdb/node-api")).href);
  const instance = await DuckDBInstance.create(":memory:");
  const conn = await instance.connect();
  const reader = await conn.runAndReadAll(sql);
  if (table) {
    printTable(reader.columnNames(), reader.getRows());
    return;
  }
  const rows = reader.getRowObjectsJS();
  process.stdout.write(
    JSON.stringify(rows, (_, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n",
  );
}

// cell renders one DuckDB value for the table as DuckDB itself prints it
// (timestamps to the nanosecond, blobs with \\x escapes), NULL as NULL.
function cell(v) {
  if (v === null || v === undefined) {
    return "NULL";
  }
  return String(v);
}

// printTable writes rows under their column names, each column as wide as
// its widest cell.
function printTable(names, rows) {
  const cells = rows.map((r) => r.map(cell));
  const width = names.map((n, i) => Math.max(n.length, ...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(width[i])).join("  ").trimEnd() + "\n";
  process.stdout.write(line(names));
  for (const r of cells) {
    process.stdout.write(line(r));
  }
  process.stdout.write(`(${rows.length} ${rows.length === 1 ? "row" : "rows"})\n`);
}

main().catch((e) => {
  console.error(`duckdb: ${e?.stack ?? e}`);
  process.exit(1);
});
