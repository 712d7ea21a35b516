"""Benchmark: prepare N synthetic examples (exact dedup + MinHash near dedup + chat template + tokenise + loss mask),
the batched path of `domain_tuner.data` against a naive per-example loop, side by side, checking that both give
byte-identical output and that the batched output is byte-identical across runs (and processes).

Batched: one `minhash_signatures` call (numpy, one permutation at a time over all shingles), ChatML rendered with
string operations (Jinja for other templates), one Rust `encode_batch` per 2000 examples, labels from the encoding's
char->token map. Naive: per example `apply_chat_template(..., return_assistant_tokens_mask=True)` and a MinHash
updated one shingle at a time. The Rust BPE work is the same in both and bounds the speed-up of that step; the
benchmark tokenizer is a byte-level BPE trained on the synthetic text (the tiny model's 512-token tokenizer splits
words into characters: `--tiny-tokenizer`). Both wall and CPU seconds are printed: on a shared machine CPU time is steadier.

    .venv/bin/python bench/bench_data.py            # 100k examples, a few minutes on 2 CPU cores
    .venv/bin/python bench/bench_data.py --n 20000  # quicker
"""
import argparse, hashlib, json, os, random, subprocess, sys, time
from pathlib import Path
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'true')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

def synthetic(n, seed=0):
    "Long-tailed synthetic Q&A: ~3% exact duplicates (case/space changes), ~3% near duplicates (one word changed)."
    rng = random.Random(seed)
    words = [f"{a}{b}" for a in ("rev", "cash", "debt", "asset", "equity", "lease", "tax", "note", "ratio", "margin", "cost", "fund")
             for b in ("", "s", "ed", "ing", "al", "ity", "ment", "er", "ive", "ure")] + "the of a to in and is for on with as by".split()
    out = []
    for i in range(n):
        r = rng.random()
        if out and r < 0.03:
            out.append(json.loads(json.dumps(out[rng.randrange(len(out))]))); m = out[-1]['messages'][-1]
            m['content'] = m['content'].upper() if rng.random() < .5 else m['content'].replace(' ', '  ', 1); continue
        if out and r < 0.06:
            src = json.loads(json.dumps(out[rng.randrange(len(out))])); m = src['messages'][-1]['content'].split()
            if len(m) > 40: m[rng.randrange(len(m))] = rng.choice(words); src['messages'][-1]['content'] = " ".join(m); out.append(src); continue
        q = " ".join(rng.choice(words) for _ in range(rng.randint(6, 25))) + "?"
        a = " ".join(rng.choice(words) for _ in range(min(int(rng.lognormvariate(3.6, 0.7)) + 5, 400))) + "."
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if rng.random() < 0.2: msgs = [{"role": "system", "content": "You are a careful financial analyst."}] + msgs
        out.append({"messages": msgs, "meta": {"source": f"synthetic.jsonl:{i+1}"}})
    return out

def digest(examples, dups):
    h = hashlib.sha256()
    for e in examples: h.update(json.dumps(e, separators=(',', ':')).encode() + b"\n")
    h.update(json.dumps(dups, sort_keys=True).encode())
    return h.hexdigest()

class Clock:
    "Wall and CPU seconds per step (CPU time is steadier on a shared, loaded machine)."
    def __init__(self): self.t = {}; self.reset()
    def reset(self): self.w, self.c = time.perf_counter(), time.process_time()
    def lap(self, k): self.t[k] = (time.perf_counter() - self.w, time.process_time() - self.c); self.reset()

def batched(records, tok):
    from domain_tuner.data import dedup_exact, dedup_near, minhash_signatures, record_text, encode_batch
    t = Clock()
    kept, dups = dedup_exact(records); t.lap('exact dedup')
    sig = minhash_signatures([record_text(r) for r in kept])
    kept, near = dedup_near(kept, sig=sig); t.lap('near dedup')
    exs = []
    for b in range(0, len(kept), 2000): exs += encode_batch(kept[b:b+2000], tok)[0]
    t.lap('template+tokenise+mask')
    return exs, dups + near, t.t

def naive(records, tok):
    """What a straightforward script does: one example at a time: transformers' `apply_chat_template(...,
    return_assistant_tokens_mask=True)`, and MinHash updated one shingle at a time (the datasketch `update` pattern)."""
    import hashlib as hl
    from domain_tuner.clean import dedup_key, record_text, _shingles, _params, dedup_near, record_source as _src
    t = Clock()
    seen, kept, dups = {}, [], []
    for i, r in enumerate(records):
        h = hl.blake2b(dedup_key(record_text(r)).encode(), digest_size=16).digest()
        if h in seen: dups.append(dict(source=_src(r, i), duplicate_of=_src(records[seen[h]], seen[h]), kind='exact'))
        else: seen[h] = i; kept.append(r)
    t.lap('exact dedup')
    a, b = _params(64, 0); vocab = {}; sig = np.empty((len(kept), 64), dtype=np.uint64)
    with np.errstate(over='ignore'):
        for i, r in enumerate(kept):
            sh, _ = _shingles([record_text(r)], 3, vocab)
            m = np.full(64, np.iinfo(np.uint64).max, dtype=np.uint64)
            for x in sh:   # datasketch's MinHash.update pattern: one shingle at a time, numpy across permutations
                np.minimum(m, (x * a + b) >> np.uint64(11), out=m)
            sig[i] = m
    kept, near = dedup_near(kept, sig=sig); t.lap('near dedup')
    exs = []
    for r in kept:
        o = tok.apply_chat_template(r['messages'], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        exs.append(dict(input_ids=list(o['input_ids']), labels=[i if m else -100 for i, m in zip(o['input_ids'], o['assistant_masks'])]))
    t.lap('template+tokenise+mask')
    return exs, dups + near, t.t

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=100_000, help="examples (default 100k)")
    p.add_argument('--vocab', type=int, default=4096, help="vocabulary of the BPE tokenizer trained for the benchmark")
    p.add_argument('--tiny-tokenizer', action='store_true', help="use the 512-token tiny-model tokenizer (splits words into "
                   "characters, ~2.7x more tokens, so Rust BPE time, the same in both paths, dominates)")
    p.add_argument('--digest-only', action='store_true')
    a = p.parse_args()
    from domain_tuner.tiny import tiny_model_dir, build_tokenizer
    from domain_tuner.models import load_tokenizer
    t0 = time.perf_counter(); records = synthetic(a.n); gen = time.perf_counter() - t0
    if a.tiny_tokenizer: tok = load_tokenizer(tiny_model_dir())
    else:  # a byte-level BPE of realistic granularity (same special tokens and ChatML template as the tiny model's)
        tok = build_tokenizer([m['content'] for r in synthetic(2000, seed=1) for m in r['messages']], vocab_size=a.vocab)
    if a.digest_only: print(digest(*batched(records, tok)[:2])); return
    fast_ex, fast_d, ft = batched(records, tok)
    fast2_ex, fast2_d, _ = batched(synthetic(a.n), tok)
    slow_ex, slow_d, st = naive(records, tok)
    other = subprocess.run([sys.executable, __file__, '--n', str(a.n), '--vocab', str(a.vocab), '--digest-only']
                           + (['--tiny-tokenizer'] if a.tiny_tokenizer else []), capture_output=True, text=True,
                           env={**os.environ, 'PYTHONHASHSEED': '12345'}).stdout.strip()
    n_tok = sum(len(e['input_ids']) for e in fast_ex)
    print(f"tokenizer: {'tiny (512 tokens)' if a.tiny_tokenizer else f'byte-level BPE, {len(tok)} tokens'}; "
          f"TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']}, {os.cpu_count()} CPUs")
    print(f"{a.n:,} synthetic examples ({gen:.1f}s to generate), {len(fast_ex):,} kept, {len(fast_d):,} duplicates "
          f"({sum(d['kind'] == 'exact' for d in fast_d):,} exact, {sum(d['kind'] == 'near' for d in fast_d):,} near), {n_tok:,} tokens")
    print(f"{'step':<24}{'naive wall':>11}{'batched':>10}{'speed-up':>9}   {'naive CPU':>10}{'batched':>10}{'speed-up':>9}")
    for k in ft: print(f"{k:<24}{st[k][0]:>10.1f}s{ft[k][0]:>9.1f}s{st[k][0]/ft[k][0]:>8.1f}x   {st[k][1]:>9.1f}s{ft[k][1]:>9.1f}s{st[k][1]/ft[k][1]:>8.1f}x")
    S, F = [sum(v[i] for v in st.values()) for i in (0, 1)], [sum(v[i] for v in ft.values()) for i in (0, 1)]
    print(f"{'total':<24}{S[0]:>10.1f}s{F[0]:>9.1f}s{S[0]/F[0]:>8.1f}x   {S[1]:>9.1f}s{F[1]:>9.1f}s{S[1]/F[1]:>8.1f}x"
          f"   ({a.n/F[0]:,.0f} examples/s batched)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    d1, d2, d3 = digest(fast_ex, fast_d), digest(fast2_ex, fast2_d), digest(slow_ex, slow_d)
    print(f"output sha256: batched {d1[:16]}, batched again {d2[:16]}, other process (PYTHONHASHSEED=12345) {other[:16]}, naive {d3[:16]}")
    assert d1 == d2 == other, "batched output differs between runs"
    assert d1 == d3, "batched and naive outputs differ"
    print("byte-identical across runs, processes and implementations: yes")

if __name__ == '__main__': main()
