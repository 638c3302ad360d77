'use strict';
// Work generation at the receive threshold with the nanocurrency npm
// package's computeWork, over the same 8 roots as nanokms's
// BenchmarkWorkReceiveThreshold (e2e/work_bench_test.go; roots.json).
//
//   npm install && node bench.js [passes] [threads,...]
//
// (threads: the thread counts to run, default 1,2)
//
// computeWork runs a WebAssembly search on the calling thread, from nonce
// workerIndex * 2^64 / workerCount upwards. "threads=N" runs N worker
// threads on disjoint ranges (workerIndex 0..N-1 of workerCount N) and
// takes the first answer (the others are terminated). The number of hashes
// a search computed follows from the nonce it returns: nonce - start + 1
// for the thread that won; with N threads the total is estimated as N
// times that (they hash at the same speed for the same time).

const { Worker, isMainThread, parentPort } = require('worker_threads');
const os = require('os');
const nc = require('nanocurrency');
const { threshold, roots } = require('./roots.json');

const TWO64 = 1n << 64n;

if (!isMainThread) {
  parentPort.on('message', async ({ root, index, count }) => {
    const work = await nc.computeWork(root, { workThreshold: threshold, workerIndex: index, workerCount: count });
    parentPort.postMessage({ work });
  });
  // Instantiate the WebAssembly module before any timing starts.
  nc.computeWork(roots[0], { workThreshold: '0000000000000001' }).then(() => parentPort.postMessage({ ready: true }));
  return;
}

function start(index, count) {
  return (TWO64 / BigInt(count)) * BigInt(index);
}

function spawn() {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename);
    w.once('error', reject);
    w.once('message', (m) => (m.ready ? resolve(w) : reject(new Error('unexpected message'))));
  });
}

// race solves root on count threads; it returns the wall time (ns) and the
// winning thread's hash count.
async function race(root, count) {
  const workers = await Promise.all(Array.from({ length: count }, spawn));
  const t0 = process.hrtime.bigint();
  const first = await new Promise((resolve) => {
    workers.forEach((w, index) => {
      w.once('message', (m) => resolve({ ...m, index }));
      w.postMessage({ root, index, count });
    });
  });
  const ns = process.hrtime.bigint() - t0;
  await Promise.all(workers.map((w) => w.terminate()));
  if (first.work === null || !nc.validateWork({ blockHash: root, work: first.work, threshold })) {
    throw new Error(`invalid work ${first.work} for ${root}`);
  }
  const attempts = BigInt('0x' + first.work) - start(first.index, count) + 1n;
  return { ns, attempts, work: first.work };
}

async function main() {
  const passes = Number(process.argv[2] || 1);
  const counts = (process.argv[3] || '1,2').split(',').map(Number);
  if (!(passes >= 1) || counts.some((c) => !(c >= 1))) {
    throw new Error('usage: node bench.js [passes] [threads,...]');
  }
  const pkg = require('nanocurrency/package.json');
  console.log(`nanocurrency ${pkg.version}, node ${process.version}, ${os.cpus()[0].model}, ${os.cpus().length} CPUs, ${os.platform()} ${os.release()}`);
  console.log(`threshold ${threshold}, ${roots.length} roots, ${passes} pass(es)`);
  for (const count of counts) {
    let ns = 0n;
    let hashes = 0n;
    let solutions = 0;
    for (let p = 0; p < passes; p++) {
      for (const root of roots) {
        const r = await race(root, count);
        ns += r.ns;
        hashes += r.attempts * BigInt(count);
        solutions++;
        console.log(`  threads=${count} ${root.slice(0, 16)}… work ${r.work} in ${(Number(r.ns) / 1e6).toFixed(1)} ms`);
      }
    }
    const s = Number(ns) / 1e9;
    const est = count > 1 ? ' (estimated: threads x winner)' : '';
    console.log(`threads=${count}: ${solutions} solutions in ${s.toFixed(2)} s = ${(solutions / s).toFixed(3)} solutions/s, ` +
      `${(Number(hashes) / s / 1e6).toFixed(2)} M hashes/s${est}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
