// Times ONNX Runtime (onnxruntime-node) on models, like `onnx-distill bench`: warm-up, then
// repeated runs for --min-time seconds (at least --min-runs, 10), median/p10/p90. Prints JSON in
// the same shape as `onnx-distill bench --json`. The warm-up is up to 0.2 s and at least 3 runs
// (--min-runs of 1 or 2: that many).
//   node tests/ort_bench.js [--batch 1,64] [--threads 1,2] [--min-time S] [--min-runs N] MODEL...
'use strict';
const ort = require('onnxruntime-node');
const { makeInputs } = require('./ort_inputs');

async function main() {
  const args = process.argv.slice(2);
  let batches = [1, 64], threads = [1, 2], minTime = 1.0, minRuns = 10;
  const models = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--batch') batches = args[++i].split(',').map(Number);
    else if (args[i] === '--threads') threads = args[++i].split(',').map(Number);
    else if (args[i] === '--min-time') minTime = Number(args[++i]);
    else if (args[i] === '--min-runs') minRuns = Math.max(1, Number(args[++i]));
    else models.push(args[i]);
  }
  const out = [];
  for (const model of models) {
    const entry = { model, results: [] };
    for (const batch of batches) {
      for (const t of threads) {
        const session = await ort.InferenceSession.create(model, {
          intraOpNumThreads: t, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
        const feeds = {};
        const sine = n => Float32Array.from({ length: n }, (_, i) => Math.sin(i));
        for (const { name, tensor } of makeInputs(session, batch, sine)) feeds[name] = tensor;
        const warmEnd = performance.now() + Math.min(200, minTime * 200);
        for (let i = 0; i < Math.min(3, minRuns) || performance.now() < warmEnd; i++) await session.run(feeds);
        const times = [];
        const start = performance.now();
        while (times.length < minRuns || (performance.now() - start) / 1000 < minTime) {
          const t0 = performance.now();
          await session.run(feeds);
          times.push((performance.now() - t0) / 1000);
        }
        times.sort((a, b) => a - b);
        const n = times.length;
        const median = n % 2 ? times[(n - 1) / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
        entry.results.push({ batch, threads: t, median_ms: 1e3 * median, p10_ms: 1e3 * times[Math.floor(n / 10)],
                             p90_ms: 1e3 * times[Math.floor(n * 9 / 10)], samples_per_s: batch / median });
        await session.release();
      }
    }
    out.push(entry);
  }
  console.log(JSON.stringify(out));
}
main().catch(e => { console.error(e.message || e); process.exit(1); });
