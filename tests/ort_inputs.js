// The inputs tests/ort_bench.js and tests/ort_compare.js feed a model: one float32 tensor per
// graph input, its dims the model's with the first set to the batch (other symbolic dims 1;
// [batch, 1, 28, 28] when ONNX Runtime gives no shape), its values fill(n): a Float32Array of n.
'use strict';
const ort = require('onnxruntime-node');

// [{ name, dims, data, tensor }] in the session's input order; fill is called in that order.
function makeInputs(session, batch, fill) {
  const meta = session.inputMetadata || [];
  return session.inputNames.map(name => {
    const m = Array.isArray(meta) ? meta.find(x => x.name === name) : null;
    const dims = m && m.shape ? m.shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : (i === 0 ? batch : 1))) : [batch, 1, 28, 28];
    dims[0] = batch;
    const data = fill(dims.reduce((a, b) => a * b, 1));
    return { name, dims, data, tensor: new ort.Tensor('float32', data, dims) };
  });
}

module.exports = { makeInputs };
