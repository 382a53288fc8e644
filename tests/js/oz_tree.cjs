#!/usr/bin/env node
// Test helper: runs a batch of jobs against the reference @openzeppelin/merkle-tree.
//
// Reads a JSON array of jobs on stdin and prints a JSON array of results (same order).
// Jobs:
//   {op: "of", values, leafEncoding, sortLeaves?, proofs?: [i..] | "all", multiproofs?: [[i..]..]}
//       -> {root, dump, render, proofs, multiproofs}
//   {op: "load", dump, proofs?, multiproofs?}       -> same (dump is tree.dump() after load)
//   {op: "verify", root, leafEncoding, value, proof} -> {ok: bool}
//   {op: "verifyMultiProof", root, leafEncoding, multiproof} -> {ok: bool}
// A job that throws gives {error: message}. Proof/multiproof indices are value indices.
// Run with cwd at the repository root (or NODE_PATH=<root>/node_modules) so that
// require('@openzeppelin/merkle-tree') resolves to the pinned copy.
'use strict';
const path = require('path');
const { StandardMerkleTree } = require(
  require.resolve('@openzeppelin/merkle-tree', {
    paths: [process.cwd(), path.resolve(__dirname, '..', '..')],
  }),
);

const toJson = v =>
  JSON.parse(
    JSON.stringify(v, (_k, x) =>
      typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? '0x' + Buffer.from(x).toString('hex') : x,
    ),
  );

function describe(tree, job) {
  const out = { root: tree.root, dump: toJson(tree.dump()), render: tree.render() };
  const proofIdx = job.proofs === 'all' ? [...Array(tree.length).keys()] : job.proofs || [];
  out.proofs = proofIdx.map(i => tree.getProof(i));
  out.multiproofs = (job.multiproofs || []).map(idx => toJson(tree.getMultiProof(idx)));
  out.valueProofs = (job.valueProofs || []).map(v => tree.getProof(v));
  return out;
}

function run(job) {
  switch (job.op) {
    case 'of': {
      const tree = StandardMerkleTree.of(job.values, job.leafEncoding, { sortLeaves: job.sortLeaves ?? true });
      return describe(tree, job);
    }
    case 'load': {
      const tree = StandardMerkleTree.load(job.dump);
      tree.validate();
      return describe(tree, job);
    }
    case 'verify':
      return { ok: StandardMerkleTree.verify(job.root, job.leafEncoding, job.value, job.proof) };
    case 'verifyMultiProof':
      return { ok: StandardMerkleTree.verifyMultiProof(job.root, job.leafEncoding, job.multiproof) };
    default:
      throw new Error(`unknown op ${job.op}`);
  }
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', d => (input += d));
process.stdin.on('end', () => {
  const jobs = JSON.parse(input);
  const results = jobs.map(job => {
    try {
      return run(job);
    } catch (e) {
      return { error: String(e && e.message ? e.message : e) };
    }
  });
  process.stdout.write(JSON.stringify(results));
});
