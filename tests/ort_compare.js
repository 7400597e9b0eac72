// Interop: runs each model in ONNX Runtime (onnxruntime-node) and in `onnx-distill run` on the
// same deterministic inputs, at each batch size, and compares every output element:
// |ours - ort| <= tol * max(1, |ort|). Prints a line per case and `interop: N passed, N failed, 0 skipped`.
//   node tests/ort_compare.js [--tol 1e-4] [--batch 1,64] [--bin build/onnx-distill] MODEL...
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const ort = require('onnxruntime-node');
const { makeInputs } = require('./ort_inputs');

function writeNpy(file, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const h = Buffer.alloc(10);
  h.write('\x93NUMPY', 0, 'latin1');
  h[6] = 1; h[7] = 0;
  h.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([h, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

function readNpy(file) {
  const b = fs.readFileSync(file);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = b.toString('latin1', major === 1 ? 10 : 12, start);
  if (!header.includes("'<f4'")) throw new Error(`${file}: not float32: ${header}`);
  const shape = header.match(/\(([^)]*)\)/)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const copy = Buffer.from(b.subarray(start));
  return { data: new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4), shape };
}

async function main() {
  const args = process.argv.slice(2);
  let tol = 1e-4, batches = [1, 64], bin = path.join(__dirname, '..', process.env.BUILD || 'build', 'onnx-distill');
  const models = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--tol') tol = Number(args[++i]);
    else if (args[i] === '--batch') batches = args[++i].split(',').map(Number);
    else if (args[i] === '--bin') bin = args[++i];
    else models.push(args[i]);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'od-interop-'));
  let passed = 0, failed = 0;
  for (const model of models) {
    const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
    for (const batch of batches) {
      const feeds = {}, inputArgs = [];
      let seed = 1234 + batch;
      const lcg = n => {
        const x = new Float32Array(n);
        for (let i = 0; i < n; i++) { seed = (seed * 1103515245 + 12345) >>> 0; x[i] = (seed / 4294967296) * 4 - 2; }
        return x;
      };
      for (const { name, dims, data, tensor } of makeInputs(session, batch, lcg)) {
        feeds[name] = tensor;
        const file = path.join(tmp, `in_${name.replace(/[^A-Za-z0-9_]/g, '_')}.npy`);
        writeNpy(file, data, dims);
        inputArgs.push('--input', `${name}=${file}`);
      }
      const outArgs = [];
      session.outputNames.forEach((name, i) => outArgs.push('--output', `${name}=${path.join(tmp, `out_${i}.npy`)}`));
      const label = `${path.basename(model)} batch ${batch}`;
      try {
        execFileSync(bin, ['run', model, ...inputArgs, ...outArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
        const res = await session.run(feeds);
        let worst = 0, where = -1;
        session.outputNames.forEach((name, oi) => {
          const ours = readNpy(path.join(tmp, `out_${oi}.npy`));
          const theirs = res[name].data;
          if (ours.data.length !== theirs.length) throw new Error(`output ${name}: ${ours.data.length} elements, ORT ${theirs.length}`);
          for (let i = 0; i < theirs.length; i++) {
            const err = Math.abs(ours.data[i] - theirs[i]) / Math.max(1, Math.abs(theirs[i]));
            if (!(err <= worst)) { worst = err; where = i; }
          }
        });
        if (worst <= tol) { passed++; console.log(`PASS ${label}: max rel diff ${worst.toExponential(2)}`); }
        else { failed++; console.log(`FAIL ${label}: max rel diff ${worst.toExponential(2)} at element ${where} (tolerance ${tol})`); }
      } catch (e) {
        failed++;
        console.log(`FAIL ${label}: ${(e.stderr ? e.stderr.toString() : e.message).trim()}`);
      }
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`interop: ${passed} passed, ${failed} failed, 0 skipped`);
  process.exit(failed ? 1 : 0);
}
main().catch(e => { console.error(e); process.exit(1); });
