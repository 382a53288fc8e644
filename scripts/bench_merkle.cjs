#!/usr/bin/env node
// Benchmark half of scripts/bench_merkle.py: the reference @openzeppelin/merkle-tree.
//
//   node scripts/bench_merkle.cjs <values.json> <indices.json>
//
// values.json: [[address, amountDecimalString], ...]; indices.json: [valueIndex, ...].
// Prints one JSON object: {build_s, proofs_ms, root, dump_bytes}. Timing covers only
// StandardMerkleTree.of (build) and the getProof calls (proofs).
'use strict';
const fs = require('fs');
const path = require('path');
const { performance } = require('perf_hooks');
const { StandardMerkleTree } = require(
  require.resolve('@openzeppelin/merkle-tree', {
    paths: [process.cwd(), path.resolve(__dirname, '..')],
  }),
);

const [valuesFile, indicesFile] = process.argv.slice(2);
const values = JSON.parse(fs.readFileSync(valuesFile, 'utf8'));
const indices = JSON.parse(fs.readFileSync(indicesFile, 'utf8'));

let t0 = performance.now();
const tree = StandardMerkleTree.of(values, ['address', 'uint256']);
const buildS = (performance.now() - t0) / 1000;

t0 = performance.now();
for (const i of indices) tree.getProof(i);
const proofsMs = performance.now() - t0;

const dumpBytes = Buffer.byteLength(JSON.stringify(tree.dump()));
process.stdout.write(JSON.stringify({ build_s: buildS, proofs_ms: proofsMs, root: tree.root, dump_bytes: dumpBytes }));
