#!/usr/bin/env python
"""Benchmark: batched, length-sorted evaluation vs batch-size-1 scoring and generation on the same items.

Runs `domain_tuner.evaluate.evaluate` twice on one benchmark (greedy answers + task metrics + reference perplexity),
once with batch_size=1 and once batched, checks that every metric agrees (difference below 1e-4; perplexity compared
as mean NLL per token, i.e. log-perplexity) and that the answers are identical, and prints the timings.

    .venv/bin/python bench/bench_eval.py [--items 96] [--batch-size 16] [--max-new-tokens 32]

Exit code 1 when the speed-up is below 3x or a metric differs.
"""
import argparse, math, os, random, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')

def make_bench(n, seed=0):
    "Finance-flavoured questions of very different lengths (1 to ~12 sentences of context), with short references."
    from domain_tuner.tiny import DEFAULT_CORPUS
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        ctx = ' '.join(rng.choice(DEFAULT_CORPUS) for _ in range(rng.choice([0, 1, 2, 4, 8, 12])))
        q = rng.choice(["What was revenue?", "What is the current ratio?", "Summarise the risks.", "What is EBITDA?",
                        "How did net income change?", "What law governs the agreement?"])
        a = rng.choice(["$12.4 million", "2.0", "Revenue rose 8%.", "Earnings before interest, taxes, depreciation and amortisation.",
                        "Net income rose to $1.9 million.", "Delaware"])
        recs.append({'messages': [{'role': 'user', 'content': (ctx + '\n\n' + q).strip()}, {'role': 'assistant', 'content': a}],
                     'meta': {'context': ctx} if ctx else {}})
    return recs

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--items', type=int, default=64); p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--max-new-tokens', type=int, default=24)
    p.add_argument('--threads', type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args(argv)
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    from domain_tuner.tiny import tiny_model_dir
    from domain_tuner.models import load_model, load_tokenizer
    from domain_tuner.evaluate import evaluate
    d = tiny_model_dir('bench-eval', hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, initializer_range=0.4)
    tok, model = load_tokenizer(d), load_model(d)
    bench = make_bench(a.items)
    metrics = ['exact_match', 'token_f1', 'rouge_l', 'word_bleu', 'word_chrf', 'numeric_match']
    lens = sorted(len(tok.apply_chat_template(r['messages'][:-1], add_generation_prompt=True, tokenize=True, return_dict=True)['input_ids']) for r in bench)
    print(f"model: {d.name} ({sum(p.numel() for p in model.parameters())/1e6:.2f}M params), torch threads {torch.get_num_threads()}; "
          f"{a.items} items, prompt tokens {lens[0]}..{lens[-1]} (median {lens[len(lens)//2]}), max_new_tokens {a.max_new_tokens}")
    evaluate(model, tok, bench[:4], metrics=metrics, batch_size=4, max_new_tokens=4)   # warm-up
    runs = {}
    for bs in (1, a.batch_size):
        t = time.perf_counter()
        r = evaluate(model, tok, bench, metrics=metrics, batch_size=bs, max_new_tokens=a.max_new_tokens)
        total = time.perf_counter() - t
        runs[bs] = (r, total, r.meta['generate_seconds'], total - r.meta['generate_seconds'])
    (r1, t1, g1, s1), (rb, tb, gb, sb) = runs[1], runs[a.batch_size]
    print(f"\n{'':22}{'batch 1':>10}{'batch ' + str(a.batch_size):>12}{'speed-up':>10}")
    for label, x, y in [('generation (s)', g1, gb), ('scoring (s)', s1, sb), ('total (s)', t1, tb)]:
        print(f"{label:22}{x:10.2f}{y:12.2f}{x/y:9.1f}x")
    print(f"{'items/s':22}{a.items/t1:10.1f}{a.items/tb:12.1f}")
    print(f"\n{'metric':22}{'batch 1':>14}{'batch ' + str(a.batch_size):>14}{'|difference|':>14}")
    worst = 0.0
    for k in r1.metrics:
        x, y = r1.metrics[k], rb.metrics[k]
        diff = abs(math.log(x) - math.log(y)) if k == 'perplexity' else abs(x - y)
        worst = max(worst, diff)
        if k == 'perplexity': k, x, y = 'log perplexity', math.log(x), math.log(y)
        print(f"{k:22}{x:14.6g}{y:14.6g}{diff:14.2e}")
    same = sum(e1['prediction'] == eb['prediction'] for e1, eb in zip(r1.examples, rb.examples))
    print(f"\nidentical answers: {same}/{a.items}; largest metric difference {worst:.2e}; total speed-up {t1/tb:.1f}x")
    ok = worst < 1e-4 and same == a.items and t1/tb >= 3
    print("PASS" if ok else "FAIL: need a speed-up of at least 3x and identical metrics")
    return 0 if ok else 1

if __name__ == '__main__': sys.exit(main())
