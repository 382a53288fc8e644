#!/usr/bin/env node
// solc command-line stand-in backed by solc-js (the same compiler, built to wasm).
// It answers the two calls that forge and py-solc-x make: `--version` and
// `--standard-json` (input on stdin). Output goes to the file named by
// --loraledger-out because node may truncate large writes to a pipe when it exits;
// the `scripts/solc` shell wrapper passes that file and prints it.
'use strict';
const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
  const opts = { basePath: null, includePaths: [], allowPaths: [], out: null, mode: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i];
    if (a === '--version') opts.mode = 'version';
    else if (a === '--standard-json') opts.mode = 'standard-json';
    else if (a === '--loraledger-out') opts.out = value();
    else if (a === '--base-path') opts.basePath = value();
    else if (a === '--include-path') opts.includePaths.push(value());
    else if (a === '--allow-paths') opts.allowPaths.push(...value().split(','));
    else if (a.startsWith('--base-path=')) opts.basePath = a.slice(12);
    else if (a.startsWith('--include-path=')) opts.includePaths.push(a.slice(15));
    else if (a.startsWith('--allow-paths=')) opts.allowPaths.push(...a.slice(14).split(','));
    // Other flags (e.g. --no-import-callback) need no handling here.
  }
  return opts;
}

function readStdin() {
  // Read all of stdin synchronously: a single readFileSync(0) can return early on pipes.
  const chunks = [];
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      if (e.code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function makeImportCallback(opts) {
  // Sources not given in the input are looked up like solc does: under the base
  // path, then each include path. Only plain files are read.
  const roots = [opts.basePath || process.cwd(), ...opts.includePaths];
  return (importPath) => {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((root) => path.resolve(root, importPath));
    for (const candidate of candidates) {
      try {
        if (fs.statSync(candidate).isFile()) return { contents: fs.readFileSync(candidate, 'utf8') };
      } catch (_) { /* try the next root */ }
    }
    return { error: `File not found: ${importPath} (looked in ${roots.join(', ')})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const solc = require('solc');
  let output;
  if (opts.mode === 'version') {
    const v = solc.version().replace('Emscripten.clang', 'Linux.g++');
    output = `solc, the solidity compiler commandline interface\nVersion: ${v}\n`;
  } else if (opts.mode === 'standard-json') {
    output = solc.compile(readStdin(), { import: makeImportCallback(opts) });
  } else {
    process.stderr.write('solcjs wrapper: only --version and --standard-json are supported\n');
    process.exit(2);
  }
  if (opts.out) fs.writeFileSync(opts.out, output);
  else fs.writeSync(1, output);
}

main();
