"""(5) Data preparation (batched path vs a naive per-example loop, from bench/bench_data.py) and (6) evaluation
(batched vs batch size 1, from bench/bench_eval.py), both sides alternated and repeated in one run."""
from __future__ import annotations
import math, time
from .common import Result, timed_section, alternate, median

def data_preparation(n:int=5000, repeats:int=3)->Result:
    from bench import bench_data as bd
    from domain_tuner.tiny import build_tokenizer
    res = Result('data', '5. Data preparation vs a naive loop')
    with timed_section(res):
        records = bd.synthetic(n)
        tok = build_tokenizer([m['content'] for r in bd.synthetic(2000, seed=1) for m in r['messages']], vocab_size=4096)
        outs = {}
        def side(fn, k):
            def run():
                t = time.perf_counter(); ex, dups, _ = fn(records, tok); s = time.perf_counter() - t
                outs[k] = bd.digest(ex, dups); return s
            return run
        runs = alternate(dict(naive=side(bd.naive, 'naive'), batched=side(bd.batched, 'batched')), repeats)
        t = {k: median(v) for k, v in runs.items()}
        ratio = t['naive'] / t['batched']
        same = outs['naive'] == outs['batched']
        res.figures.update(seconds=t, ratio=ratio, examples_per_s=n / t['batched'], identical=same)
        res.targets += [("batched faster than the naive loop", f"{ratio:.1f}x", ratio > 1), ("byte-identical output", str(same), same)]
        res.notes.append(f"{n:,} synthetic Q&A records from `bench/bench_data.py` (3% exact and 3% near duplicates): exact dedup, "
                         f"MinHash near dedup, ChatML template, tokenise (byte-level BPE, 4096 tokens), response mask. Naive "
                         f"{t['naive']:.2f} s, batched {t['batched']:.2f} s ({n / t['batched']:,.0f} examples/s); median of "
                         f"{repeats} alternated runs. `python bench/bench_data.py` runs the 100k-example version with per-step timings.")
    return res

def evaluation(items:int=48, batch_size:int=16, new_tokens:int=16, repeats:int=3)->Result:
    from bench import bench_eval as be
    from domain_tuner.tiny import tiny_model_dir
    from domain_tuner.models import load_model, load_tokenizer
    from domain_tuner.evaluate import evaluate
    res = Result('eval', '6. Evaluation vs batch size 1')
    with timed_section(res):
        d = tiny_model_dir('bench-eval', hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, initializer_range=0.4)
        tok, model = load_tokenizer(d), load_model(d)
        bench = be.make_bench(items)
        metrics = ['exact_match', 'token_f1', 'rouge_l', 'word_bleu', 'word_chrf', 'numeric_match']
        evaluate(model, tok, bench[:4], metrics=metrics, batch_size=4, max_new_tokens=4)  # warm-up
        got = {}
        def side(bs):
            def run():
                t = time.perf_counter(); got[bs] = evaluate(model, tok, bench, metrics=metrics, batch_size=bs, max_new_tokens=new_tokens)
                return time.perf_counter() - t
            return run
        runs = alternate({1: side(1), batch_size: side(batch_size)}, repeats)
        t = {k: median(v) for k, v in runs.items()}
        ratio = t[1] / t[batch_size]
        r1, rb = got[1], got[batch_size]
        worst = max(abs(math.log(r1.metrics[k]) - math.log(rb.metrics[k])) if k == 'perplexity' else abs(r1.metrics[k] - rb.metrics[k]) for k in r1.metrics)
        same = sum(a['prediction'] == b['prediction'] for a, b in zip(r1.examples, rb.examples))
        res.figures.update(seconds={str(k): v for k, v in t.items()}, ratio=ratio, largest_metric_difference=worst, identical_answers=same)
        res.targets += [("batched faster than batch size 1", f"{ratio:.1f}x", ratio > 1),
                        ("same metrics (|difference| < 1e-4) and answers", f"{worst:.1e}, {same}/{items} identical", worst < 1e-4 and same == items)]
        res.notes.append(f"`domain_tuner.evaluate.evaluate` on {items} items of `bench/bench_eval.py` (prompts of very different "
                         f"lengths; greedy answers, {len(metrics)} metrics and reference perplexity), {new_tokens} new tokens, "
                         f"tiny Llama (hidden 128, 4 layers). Batch 1: {t[1]:.2f} s, batch {batch_size}: {t[batch_size]:.2f} s; "
                         f"median of {repeats} alternated runs.")
    return res
