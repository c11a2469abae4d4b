// tokenizer_fuzz.js -- the reference side of test/bench/tokenizer_fuzz.sh: writes TEXTS.json,
// random strings assembled from pieces chosen to stress the tokenizer (letters, numbers and
// spaces of many Unicode categories, contractions, punctuation, emoji, control bytes, added
// tokens and their fragments), and prints each one's ids and decoded text through the Hugging
// Face `tokenizers` Node binding in the format of tokenizer_fuzz.c.
//
//   node tokenizer_fuzz.js MODEL_DIR TEXTS.json SEED COUNT MAXPIECES > hf.txt
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const [modelDir, textsPath, seedArg, countArg, piecesArg] = process.argv.slice(2);
const tok = Tokenizer.fromFile(path.join(modelDir, 'tokenizer.json'));
let seed = parseInt(seedArg || '1', 10);
const rnd = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
const pool = [' ', '  ', '\t', '\n', '\r\n', '\u00a0', '\u2000', '\u3000', '\u2028', '\u0085', '\u200b',
  '\u000b', '\f', 'a', 'Z', 'é', 'ß', 'Ж', 'я', '中', '文', 'ア', '한', 'ع', 'א', 'ह', '्', '\u0301', '0',
  '7', '²', '½', 'Ⅷ', '٣', '१', '〇', "'", '"', "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", '.',
  ',', '!', '?', '-', '_', '(', ')', '{', '}', '<', '>', '|', '<|im_start|>', '<|im_end|>',
  '<|endoftext|>', '<think>', '</think>', '<|im_', '|>', '😀', '👍🏽', '🇫🇷', '\u0004', '\u001d',
  '\u007f', '\ud7ff', '\ue000', '\uffff', '𝔘', '𐍈', 'hello', 'world', 'hello world', 'The',
  'function', '12345', ' the', ' 3.14', "don't", '@', '#', '$', '%', '^', '&', '*', '~', '`', '\\', '/'];
const count = parseInt(countArg || '3000', 10), maxPieces = parseInt(piecesArg || '25', 10);
const texts = [];
for (let i = 0; i < count; i++) {
  let s = '';
  const n = 1 + rnd(maxPieces);
  for (let j = 0; j < n; j++) s += pool[rnd(pool.length)];
  texts.push(s);
}
fs.writeFileSync(textsPath, JSON.stringify(texts));
(async () => {
  const out = [];
  for (const t of texts) {
    const ids = (await tok.encode(t, null, { addSpecialTokens: false })).getIds();
    const d = await tok.decode(ids, false);
    out.push(ids.join(','), 'D' + Buffer.byteLength(d, 'utf8') + ':' + d);
  }
  process.stdout.write(out.join('\n') + '\n');
})();
