"""Run the domain-tuner benchmark suite on this CPU and write bench/RESULTS.md (and bench/results.json).

    .venv/bin/python -m bench                 # everything, ~10 minutes on 2 cores
    .venv/bin/python -m bench --only padding,throughput --repeats 1
    .venv/bin/python -m bench --real          # the real base against TRL, each side a whole process (~25 minutes)
    .venv/bin/python -m bench --only lr       # the learning rate sweep on SmolLM2-135M behind the default (~20 minutes)

Every figure is a ratio measured in this one run: the two sides alternate (A B, B A, ...) and each side's median
over the repeats is used; the load average is recorded with every benchmark because a shared machine inflates and
destabilises timings. Models are tiny Llama configs built in-process (random weights, no download); `--real` uses the demo's
SmolLM2-135M-Instruct. A run replaces its own sections of RESULTS.md and keeps the others (results.json holds them)."""
from __future__ import annotations
import argparse, json, os, shlex, sys, time, traceback
from pathlib import Path
from .common import ROOT, machine, load_average, instructions, model_dir, encoded, Result

WHY_NOT = {
    'memory': "The ratios in the issue come from GPU practice, where LoRA keeps the base in bf16 (2 bytes per parameter "
        "against about 16 for full fine-tuning with AdamW) and QLoRA keeps it in NF4 (about 0.5). On this CPU the base stays in "
        "fp32 (bf16 matmuls without AVX512-BF16/AMX run about 20x slower, see the TRL-default note), so LoRA's floor is the fp32 "
        "weights plus activations; the child's peak RSS also counts the same Python/torch runtime on both sides of each ratio. "
        "QLoRA's CPU peak is set by loading, not by training: bitsandbytes' CPU path materialises full-precision tensors while "
        "it quantises, and the freed heap is not returned to the OS before training starts. What would close it: quantise "
        "tensor by tensor while reading the checkpoint (peak about one tensor), `malloc_trim` after loading, and a bf16 base "
        "for LoRA where the hardware computes in bf16 (bench/gpu_check.py measures GPU peaks with the CUDA allocator). "
        "The planner's activation term matches the bytes autograd saves per token; its misses are the terms it does not model "
        "on a CPU (allocator retention and resident checkpoint pages: LoRA under-estimated) and a loading factor calibrated "
        "on a tiny model (QLoRA over-estimated); calibrating those two on measured 100M-1B runs would close it.",
    'lora': "LoRA saves the weight-gradient matmul of every frozen linear layer and the AdamW update of the frozen weights; "
        "peft adds a dropout copy of each adapted layer's input and rank-r matmuls that are inefficient on a CPU. The ratio "
        "grows with the hidden size (and with dropout=0); on a loaded 2-core machine it also moves by several percent run to run.",
    'latency': "Unmerged, peft runs every adapted layer as base(x) + B(A(dropout(x))) in Python; in batch-1 decoding of a small "
        "model that per-layer cost is comparable to the matmuls themselves. `domain-tuner merge` removes it (merged = the base "
        "architecture with the same shapes); larger models make it relatively smaller. A merged/base ratio away from 1 by no "
        "more than the base_again noise floor is noise of this shared machine, not a property of the model.",
    'throughput': "See the table: the equal-quality rule compares held-out response loss after one epoch.",
    'distributed': "With glibc's default allocator the resident peak levels off above the memory allocated (see the "
        "section); the planner counts what is allocated.",
    'overhead': "The overhead is data loading and collation, clipping, scheduler and callbacks; the section lists the parts.",
}

ALL = ('padding', 'throughput', 'lora', 'memory', 'distributed', 'merge', 'tableqa', 'planner', 'chunked', 'data', 'eval', 'overhead', 'latency')  # and 'real' (--real), 'compile', 'lr'

def _fmt(v):
    if isinstance(v, float): return f"{v:.4g}"
    if isinstance(v, dict): return '{' + ', '.join(f"{k}: {_fmt(x)}" for k, x in v.items()) + '}'
    return str(v)

def write_results(results:list[Result], info:dict, path:Path, earlier:list[dict]=()):
    made = [f"`{info['command']}` on {info['started']} ({info['seconds'] / 60:.1f} minutes)"]
    made += [f"`{e['command']}` on {e['started']} ({e['seconds'] / 60:.1f} minutes; sections {', '.join(e['keys'])})" for e in earlier]
    lines = ["# domain-tuner benchmark results", "", "Produced by " + '; and earlier by '.join(made) + ".", "",
             "## Machine", "",
             f"- {info['machine']['cores']} CPU cores ({info['machine']['cpu']}), {info['machine']['memory_gb']} GB memory, "
             f"no GPU used; torch threads {info['machine']['torch_threads']} (both sides of every comparison use the same)",
             f"- python {info['machine']['python']}, torch {info['machine']['torch']}, transformers {info['machine']['transformers']}, "
             f"peft {info['machine']['peft']}, trl {info['machine']['trl']}",
             f"- load average (1 min) at start {info['load_start']:.2f}, at end {info['load_end']:.2f}: the machine is shared, "
             f"so absolute figures vary from run to run; ratios are measured with the two sides alternated in one run.", "",
             "## Summary", "", "| benchmark | target | measured | met | load avg start/end |", "|---|---|---|---|---|"]
    for r in results:
        for desc, got, ok in (r.targets or [("(failed to run)", '-', False)]):
            lines.append(f"| {r.title} | {desc} | {got} | {'yes' if ok else '**no**'} | {r.load[0]:.1f} / {r.load[1]:.1f} |")
    for r in results:
        lines += ["", f"## {r.title}", "", f"Load average {r.load[0]:.2f} at start, {r.load[1]:.2f} at end; {r.seconds:.0f} s.", ""]
        for i, n in enumerate(r.notes):
            table, nxt = n.startswith('|'), i + 1 < len(r.notes) and r.notes[i + 1].startswith('|')
            lines += [n] if (table and nxt) else [n, '']
        if not r.passed and r.key in WHY_NOT: lines += ["**Where a target is not met, and what would close it.** " + WHY_NOT[r.key], ""]
    gpu = ROOT/'bench'/'GPU.md'  # a device run's gpu_check.md, committed as it came back
    lines += ["", "## GPU part", ""] + ([gpu.read_text()] if gpu.exists() else [
              "`bench/gpu_check.py` (full, LoRA and QLoRA in bf16 with the loss falling, the fp16 path a T4 takes, adapter "
              "reload and merge parity, batched generation on a 4-bit model, tokens/s and MFU with FLOPs counted where they "
              "are computed, peak memory against the planner, TRL on the same rows) needs a CUDA GPU. None has been lent to "
              "this project's sessions yet, so there are no GPU figures here; the check's `--smoke` mode runs every code "
              "path on a tiny shape on the CPU in CI (`make test`). With a GPU: `make gpu-carry` here, then `bash "
              "tools/device_check.sh` there (it also runs the whole test suite on CUDA), and commit its `gpu_check.md` as "
              "`bench/GPU.md`.", ""])
    path.write_text('\n'.join(lines))

def _earlier(store:Path, keys:set)->tuple[list[dict], list[Result]]:
    "The runs and sections of an earlier results.json that this run does not replace."
    if not store.exists(): return [], []
    old = json.loads(store.read_text())
    kept = [Result(r['key'], r['title'], r['figures'], [tuple(t) for t in r['targets']], r.get('notes', []), tuple(r['load']),
                   r['seconds']) for r in old['results'] if r['key'] not in keys and r.get('notes')]
    have = {r.key for r in kept}
    runs = [dict(old['info'], keys=old['info'].get('keys') or [r['key'] for r in old['results']])] + old.get('earlier', [])
    runs = [dict(e, keys=[k for k in e['keys'] if k in have]) for e in runs]
    return [e for e in runs if e['keys']], kept

def main(argv=None)->int:
    p = argparse.ArgumentParser(prog='python -m bench', description=__doc__.splitlines()[0])
    p.add_argument('--only', default=','.join(ALL), help=f"comma-separated subset of {', '.join(ALL)}")
    p.add_argument('--repeats', type=int, default=None, help="alternated repeats per side (median); default 3, 1 with --real")
    p.add_argument('--threads', type=int, default=None, help="torch CPU threads for every side; default 1 (the steadiest on a "
                   "loaded machine), every core with --real (as a user trains)")
    p.add_argument('--examples', type=int, default=192, help="training examples for the throughput benchmark")
    p.add_argument('--real', action='store_true', help="only the real-base suite (9): ours vs TRL on SmolLM2-135M-Instruct")
    p.add_argument('--out', default=str(ROOT/'bench'/'RESULTS.md'))
    a = p.parse_args(argv)
    if a.real: a.only = 'real'
    a.repeats = a.repeats or (1 if a.real else 3)
    a.threads = a.threads or (os.cpu_count() if a.real or a.only in ('compile', 'lr') else 1)
    import torch
    torch.set_num_threads(a.threads)
    from .training import _quiet_logs
    _quiet_logs()
    import datasets; datasets.disable_progress_bars()
    only = [x.strip() for x in a.only.split(',') if x.strip()]
    info = dict(command='python -m bench ' + ' '.join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])),
                started=time.strftime('%Y-%m-%d %H:%M %Z'), machine=machine(), load_start=load_average())
    t0 = time.perf_counter()
    results = []
    need_train = {'padding', 'throughput', 'overhead'} & set(only)
    if need_train:
        from domain_tuner.models import load_tokenizer
        from .training import TRAIN_SHAPE, MAX_LEN
        d = model_dir('train', **TRAIN_SHAPE); tok = load_tokenizer(d)
        train_ds = encoded(instructions(a.examples, seed=0), tok, MAX_LEN)
        eval_ds = encoded(instructions(64, seed=1), tok, MAX_LEN)
    for name in only:
        print(f"[bench] {name} (load {load_average():.1f}) ...", flush=True)
        try:
            from . import training, memory, distributed, merge, tableqa, planner, chunked_loss, prep_eval, latency, real, compile as compile_
            from . import lr
            r = {'real': lambda: real.real_suite(threads=a.threads, repeats=a.repeats),
                 'lr': lambda: lr.lr_by_size(),
                 'compile': lambda: compile_.compile_trial(threads=a.threads),
                 'padding': lambda: training.padding_efficiency(tok, train_ds),
                 'throughput': lambda: training.throughput(d, tok, train_ds, eval_ds, repeats=a.repeats),
                 'lora': lambda: training.lora_vs_full(repeats=a.repeats),
                 'memory': lambda: memory.peak_memory(threads=a.threads),
                 'distributed': lambda: distributed.sharded_memory(),
                 'merge': lambda: merge.merge_memory(),
                 'tableqa': lambda: tableqa.planner_on_tableqa(),
                 'planner': lambda: planner.gpu_plans(),
                 'chunked': lambda: chunked_loss.chunked_loss(),
                 'data': lambda: prep_eval.data_preparation(repeats=a.repeats),
                 'eval': lambda: prep_eval.evaluation(repeats=a.repeats),
                 'overhead': lambda: training.overhead(d, tok, train_ds),
                 'latency': lambda: latency.merged_latency(repeats=max(2 * a.repeats + 1, 5))}[name]()
        except Exception as e:
            traceback.print_exc()
            r = Result(name, name, notes=[f"failed: `{e!r:.300}`"])
        results.append(r)
        for desc, got, ok in r.targets: print(f"    {desc}: {got} {'OK' if ok else 'NOT MET'}", flush=True)
        print(f"    ({r.seconds:.0f} s)", flush=True)
    info.update(seconds=time.perf_counter() - t0, load_end=load_average())
    store = Path(a.out).with_name('results.json')
    earlier, kept = _earlier(store, {r.key for r in results})
    info['keys'] = [r.key for r in results]
    write_results(results + kept, info, Path(a.out), earlier)
    store.write_text(json.dumps(dict(info=info, earlier=earlier, results=[dict(key=r.key, title=r.title, figures=r.figures,
        targets=r.targets, notes=r.notes, load=r.load, seconds=r.seconds) for r in results + kept]), indent=1, default=str))
    print(f"wrote {a.out} ({info['seconds'] / 60:.1f} min)")
    return 0 if all(r.passed for r in results) else 1

if __name__ == '__main__': sys.exit(main())
