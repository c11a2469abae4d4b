"""classify_ref.py -- reference label log-probabilities for ouro_classify, from the `ouro` tool.

Builds the classification prompt the way the SQL surface documents it (one user message with the
instruction, the list of labels and the input, rendered by `ouro chat-template`, tokenized by
`ouro tokenize`), then scores each label as the sum over its tokens of the log-softmax of the
last-position logits that `ouro logits` prints for prompt + the label's earlier tokens.  Nothing
here uses the SQLite extension, so the suite can check the extension against it.
"""
import json
import math
import os
import tempfile

DEFAULT_INSTRUCTION = "Classify the input into one of the labels. Answer with the label only."


def _log_softmax_at(logits, i):
    m = max(logits)
    return logits[i] - (m + math.log(sum(math.exp(x - m) for x in logits)))


def prompt_ids(tool, model, inp, labels, instruction=None):
    """Token ids of the classification prompt (chat template, generation prompt added)."""
    content = "%s\n\nLabels: %s\n\nInput: %s" % (instruction or DEFAULT_INSTRUCTION, ", ".join(labels), inp)
    fd, path = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump([{"role": "user", "content": content}], f)
        text = json.loads(tool("chat-template", "--model", model, "--messages", path))["text"]
    finally:
        os.unlink(path)
    return json.loads(tool("tokenize", "--model", model, "--text", text))


def label_logprobs(tool, model, inp, labels, instruction=None):
    """[total log-probability of each label's tokens after the prompt], in label order.

    tool(*args) runs build/ouro and returns its stdout."""
    ids = prompt_ids(tool, model, inp, labels, instruction)
    cache = {}
    out = []
    for label in labels:
        lab = json.loads(tool("tokenize", "--model", model, "--text", label))
        total = 0.0
        for j, tok in enumerate(lab):
            key = tuple(ids + lab[:j])
            if key not in cache:
                cache[key] = json.loads(tool("logits", "--model", model,
                                             "--ids", ",".join(str(x) for x in key)))["logits"]
            total += _log_softmax_at(cache[key], tok)
        out.append(total)
    return out
