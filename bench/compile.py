"""(10) `torch.compile` for the training step on a CPU, measured on a demo-sized run: the demo's LoRA task stage on
SmolLM2-135M-Instruct, with and without compiling, each a whole process, compile time included.

    .venv/bin/python -m bench --only compile

Child mode: python -m bench.compile COMPILE(0|1) THREADS STEPS  -> one JSON line."""
from __future__ import annotations
import json, os, sys, tempfile, time
from .common import Result, timed_section, run_child

def child(compile_:bool, threads:int, steps:int):
    import torch, warnings
    torch.set_num_threads(threads)
    from .training import _quiet_logs
    from .real import records, BASE, BATCH, MAX_LEN
    _quiet_logs(); warnings.filterwarnings('ignore')
    from transformers import TrainerCallback
    from domain_tuner.resolve import resolve_model
    from domain_tuner.models import load_model, load_tokenizer
    from domain_tuner.methods import TrainConfig, prepare_model, training_precision
    from domain_tuner.core import seed_everything
    from domain_tuner.train import fit, LossHistory
    from dataclasses import replace
    base = resolve_model(BASE); tok = load_tokenizer(base)
    train_ds, _ = records(tok, steps * BATCH, 7)
    cfg = TrainConfig(method='lora', lr=2e-3, batch_size=BATCH, max_length=MAX_LEN, max_steps=steps, logging_steps=steps,
                      warmup_ratio=0.05, precision='fp32')
    seed_everything(0)
    model = prepare_model(load_model(base, precision=training_precision(cfg)), cfg)
    marks = []
    class Mark(TrainerCallback):
        def on_step_end(self, args, state, control, **kw): marks.append(time.perf_counter())
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(torch_compile=True, torch_compile_backend='inductor') if compile_ else {}
        _, m, hist = fit(model, tok, train_ds, None, replace(cfg, eval_before=False), out=tmp,
                         callbacks=[LossHistory(None), Mark()], **kw)
    total = time.perf_counter() - t0
    steady = (marks[-1] - marks[len(marks) // 2]) / (len(marks) - 1 - len(marks) // 2) if len(marks) > 3 else None
    print(json.dumps(dict(compile=compile_, seconds=m['train_seconds'], wall=total, first_step=marks[0] - t0 if marks else None,
                          steady_step=steady, steps=m['steps'], loss=m.get('train_loss'))), flush=True)

def compile_trial(threads:int|None=None, steps:int=25)->Result:
    threads = threads or os.cpu_count()
    res = Result('compile', '10. torch.compile for the training step on a CPU (demo-sized LoRA run, SmolLM2-135M)')
    with timed_section(res):
        out = {}
        for c in (0, 1):
            try: out[c] = run_child('bench.compile', c, threads, steps)
            except RuntimeError as e: out[c] = dict(error=str(e)[-1500:])
        res.figures.update(runs=out)
        e, c = out[0], out[1]
        if 'error' in c:
            res.targets.append(("torch.compile runs on this CPU", "failed", False))
            res.notes.append(f"Compiling failed here: `{c['error'][-600:]}`")
        else:
            ratio = e['seconds'] / c['seconds']
            res.targets.append(("keep torch.compile only if the whole run is faster, compile included", f"{ratio:.2f}x", True))
            res.notes += [f"The demo's LoRA task stage: {steps} steps of batch 8 (padding-free rows of varying length), fp32, "
                          f"{threads} threads, each run a fresh process. `TrainingArguments(torch_compile=True)` (inductor).",
                          "| run | train() seconds | first step (s, from start) | steady step (s) | final train loss |",
                          "|---|---|---|---|---|",
                          *[f"| {'compiled' if r['compile'] else 'eager'} | {r['seconds']:.1f} | {r['first_step']:.1f} | "
                            f"{r['steady_step']:.2f} | {r['loss']:.4f} |" for r in (e, c)],
                          f"Decision: {'compiled is faster over the whole run' if ratio > 1 else 'eager stays the default'} "
                          f"(eager / compiled = {ratio:.2f}x for the run, compile time included)."]
    return res

if __name__ == '__main__':
    child(bool(int(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]))
