// tokenizer_bench_hf.js -- the reference side of test/bench/tokenizer.sh: the same work as
// tokenizer_bench.c (load tokenizer.json, encode the cases.json texts and every corpus
// document) through the Hugging Face `tokenizers` Node binding (npm tokenizers, the Rust
// library), with add_special_tokens=false, printing figures in the same form.
//
//   node tokenizer_bench_hf.js MODEL_DIR CASES_JSON CORPUS_LIST [THREADS]
//
// One thread: documents encoded one after the other (Tokenizer.encode).  Several threads:
// Tokenizer.encodeBatch, which spreads documents over Rayon's pool; tokenizer.sh sets
// RAYON_NUM_THREADS to THREADS.  The checksum is FNV-1a over every document's ids, as in
// tokenizer_bench.c.  Needs `npm install` in test/bench first.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const [modelDir, casesPath, listPath, threadsArg] = process.argv.slice(2);
const threads = Math.max(1, parseInt(threadsArg || '2', 10));
const now = () => Number(process.hrtime.bigint()) / 1e9;
const opts = { addSpecialTokens: false };

// FNV-1a 64 over the ids' little-endian bytes (BigInt; outside the timed parts).
const FNV_PRIME = 0x100000001b3n, MASK = (1n << 64n) - 1n, FNV_INIT = 0xcbf29ce484222325n;
function fnvIds(ids) {
  let h = FNV_INIT;
  for (const id of ids) {
    for (let k = 0; k < 4; k++) {
      h ^= BigInt((id >>> (8 * k)) & 0xff);
      h = (h * FNV_PRIME) & MASK;
    }
  }
  return h;
}

async function main() {
  let loadBest = Infinity, tok;
  const file = path.join(modelDir, 'tokenizer.json');
  for (let rep = 0; rep < 10; rep++) {
    const t0 = now();
    tok = Tokenizer.fromFile(file);
    loadBest = Math.min(loadBest, now() - t0);
  }
  console.log(`hf   load tokenizer.json: ${(loadBest * 1e3).toFixed(1)} ms (best of 10)`);

  const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8')).map((c) => c.text);
  const caseBytes = cases.reduce((s, t) => s + Buffer.byteLength(t, 'utf8'), 0);
  let best = Infinity;
  for (let rep = 0; rep < 5; rep++) {
    const t0 = now();
    for (let k = 0; k < 20; k++) for (const t of cases) await tok.encode(t, null, opts);
    best = Math.min(best, (now() - t0) / 20);
  }
  const casesMbs = caseBytes / best / 1e6;
  console.log(`hf   cases.json texts: ${cases.length} texts, ${caseBytes} bytes, ${casesMbs.toFixed(1)} MB/s (1 thread)`);

  const names = fs.readFileSync(listPath, 'utf8').split('\n').filter((l) => l.length);
  const docs = names.map((n) => fs.readFileSync(n).toString('utf8'));
  const corpusBytes = names.reduce((s, n) => s + fs.statSync(n).size, 0);

  let t1 = Infinity, encs;
  for (let rep = 0; rep < 3; rep++) {
    const t0 = now();
    const out = [];
    for (const d of docs) out.push(await tok.encode(d, null, opts));
    t1 = Math.min(t1, now() - t0);
    encs = out;
  }
  let tm = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    const t0 = now();
    await tok.encodeBatch(docs, opts);
    tm = Math.min(tm, now() - t0);
  }
  let tokens = 0, h = FNV_INIT;
  for (const e of encs) {
    const ids = e.getIds();
    tokens += ids.length;
    h ^= fnvIds(ids);
    h = (h * FNV_PRIME) & MASK;
  }
  const hex = h.toString(16).padStart(16, '0');
  console.log(`hf   corpus: ${docs.length} documents, ${corpusBytes} bytes, ${tokens} tokens, checksum ${hex}`);
  console.log(`hf   corpus: ${(corpusBytes / t1 / 1e6).toFixed(1)} MB/s (1 thread), ` +
              `${(corpusBytes / tm / 1e6).toFixed(1)} MB/s (encodeBatch, RAYON_NUM_THREADS=${process.env.RAYON_NUM_THREADS || 'all'})`);
  console.log(`HFBENCH load_ms=${(loadBest * 1e3).toFixed(2)} cases_mbs=${casesMbs.toFixed(2)} ` +
              `corpus_mbs=${(corpusBytes / t1 / 1e6).toFixed(2)} corpus_mt_mbs=${(corpusBytes / tm / 1e6).toFixed(2)} ` +
              `threads=${threads} tokens=${tokens} checksum=${hex}`);
}

main().catch((e) => { console.error(`tokenizer_bench_hf: ${e.message}`); process.exit(1); });
