"""(14) Peak memory per process of full fine-tuning under DDP and FSDP2, 2 CPU processes (gloo), on a ~100M-parameter
Llama, next to the planner's per-process estimate (`estimate_memory(..., processes=2)`).

Child mode (under torchrun): python -m bench.distributed STRATEGY MODEL_DIR  -> one JSON line per process."""
from __future__ import annotations
import json, os, sys, tempfile
from pathlib import Path
from .common import Result, timed_section, instructions, model_dir, encoded, proc_bytes, ROOT
from .memory import SHAPE_100M

BATCH, MAX_LEN, STEPS = 2, 128, 6  # the resident peak levels off after about 4 steps

def child(strategy:str, d:str):
    import torch
    torch.set_num_threads(1)
    import peft, transformers  # the same imports in every process, so the baselines agree  # noqa
    from transformers import TrainerCallback
    from domain_tuner.models import load_model, load_tokenizer
    from domain_tuner.methods import TrainConfig, prepare_model, training_precision
    from domain_tuner.memory import estimate_memory, step_tokens
    from domain_tuner.train import fit, LossHistory
    tok = load_tokenizer(d)
    ds = encoded(instructions(BATCH * STEPS * 2, seed=5, answer_words=60), tok, MAX_LEN)
    cfg = TrainConfig(method='full', batch_size=BATCH, max_length=MAX_LEN, max_steps=STEPS, logging_steps=1,
                      distributed=strategy, optim='adamw_torch', precision='fp32')
    plan = estimate_memory(d, cfg, device='cpu', processes=2, **step_tokens(ds, cfg))
    base = proc_bytes('VmRSS')
    seen = {}
    class Phase(TrainerCallback):
        "The training phase alone: the model is loaded, wrapped (DDP) or sharded (FSDP) before `on_train_begin`."
        def on_train_begin(self, args, state, control, **kw):
            open('/proc/self/clear_refs', 'w').write('5')  # VmHWM back to the current RSS
            seen['begin'] = proc_bytes('VmRSS')
        def on_train_end(self, args, state, control, **kw): seen['peak'] = proc_bytes('VmHWM')
    model = prepare_model(load_model(d, precision=training_precision(cfg)), cfg)
    with tempfile.TemporaryDirectory() as tmp:
        tr, metrics, _ = fit(model, tok, ds, None, cfg, out=tmp, callbacks=[LossHistory(None), Phase()])
    row = json.dumps(dict(strategy=strategy, rank=int(os.environ.get('RANK', 0)), baseline=base, begin=seen['begin'],
                          peak=seen['peak'], processes=metrics.get('processes'), ran=metrics.get('strategy'),
                          loss=metrics['train_loss'], training_plan=plan.training * 1e9,
                          plan={k: getattr(plan, k) for k in ('weights', 'gradients', 'optimizer', 'activations',
                                                              'logits')}))
    # each process writes its own file: two processes printing at once can interleave on one line
    (Path(os.environ['BENCH_OUT'])/f"rank{os.environ.get('RANK', 0)}.json").write_text(row)

FIXED = dict(MALLOC_MMAP_THRESHOLD_='131072')  # glibc: every block of 128 KiB or more mapped, and unmapped when freed

def _torchrun(strategy:str, d, env:dict|None=None)->list[dict]:
    import subprocess
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m',
           'bench.distributed', strategy, str(d)]
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={
            **os.environ, 'DOMAIN_TUNER_QUIET': '1', 'OMP_NUM_THREADS': '1', 'BENCH_OUT': out, **(env or {})})
        rows = [json.loads(f.read_text()) for f in sorted(Path(out).glob('rank*.json'))]
    if p.returncode or len(rows) != 2: raise RuntimeError(f"{strategy} failed: {p.stderr[-3000:]}")
    return rows

def sharded_memory()->Result:
    d = model_dir('100m', **SHAPE_100M)
    res = Result('distributed', '14. Peak memory per process: DDP and FSDP2 on 2 CPU processes (gloo), ~100M Llama')
    with timed_section(res):
        G = 1e9
        runs = {(a, s): _torchrun(s, d, FIXED if a == 'fixed' else None) for a in ('default', 'fixed') for s in ('ddp', 'fsdp')}
        # the training phase's growth in each process: its peak over the RSS of the running interpreter with its data
        train = {k: max(r['peak'] - r['baseline'] for r in rows) / G for k, rows in runs.items()}
        plan = {s: runs[('fixed', s)][0]['training_plan'] / G for s in ('ddp', 'fsdp')}
        err = {k: plan[k[1]] / v - 1 for k, v in train.items()}
        ratio = {a: train[(a, 'fsdp')] / train[(a, 'ddp')] for a in ('default', 'fixed')}
        res.figures.update(training_peak_gb={f"{a}/{s}": v for (a, s), v in train.items()}, planner_gb=plan,
                           planner_error={f"{a}/{s}": v for (a, s), v in err.items()}, fsdp_over_ddp=ratio,
                           ran={s: runs[('fixed', s)][0]['ran'] for s in ('ddp', 'fsdp')})
        res.targets += [("FSDP2 peak per process <= 0.65x DDP's (full fine-tuning; memory as allocated)",
                         f"{ratio['fixed']:.3f} (glibc's default allocator: {ratio['default']:.3f})", ratio['fixed'] <= 0.65),
                        *[(f"planner per process within 15% of measured ({s}; memory as allocated)",
                           f"{err[('fixed', s)]:+.1%} (default allocator: {err[('default', s)]:+.1%})",
                           abs(err[('fixed', s)]) <= 0.15) for s in ('ddp', 'fsdp')]]
        res.notes += [f"Model: Llama {SHAPE_100M}, vocab 1024, fp32; full fine-tuning, {STEPS} AdamW steps of batch "
                      f"{BATCH} x up to {MAX_LEN} tokens per process, `torchrun --nproc_per_node 2` with "
                      "`--distributed ddp` or `fsdp` (the run record confirms the strategy: "
                      f"{', '.join(s + ': ' + str(runs[('fixed', s)][0]['ran']) for s in ('ddp', 'fsdp'))}). Each process "
                      "loads the whole model before DDP wraps it or FSDP shards it, so the loading peak is the same for "
                      "both; the comparison is the training phase: the peak (VmHWM reset when training begins) above the "
                      "process's RSS after its imports and data, the larger of the two processes.",
                      "Measured twice. With glibc's default allocator, memory freed after each step (activations, "
                      "gathered layers) stays resident: once a large block is freed, glibc raises its mmap threshold and "
                      "serves later blocks from the heap, which it keeps, so the peak RSS grows for about 4 steps and then "
                      "levels off above what is allocated. With `MALLOC_MMAP_THRESHOLD_=131072` every large block is "
                      "unmapped when freed, so the resident peak is the memory allocated, which is what the planner "
                      "counts (and what a GPU's allocator reports). A CPU user who wants the lower figure can set the "
                      "same variable.",
                      "| strategy | allocator | training peak above baseline GB (per process) | planner GB | planner / measured - 1 |",
                      "|---|---|---|---|---|",
                      *[f"| {s} | {a} | {train[(a, s)]:.3f} | {plan[s]:.3f} | {err[(a, s)]:+.1%} |"
                        for a in ('default', 'fixed') for s in ('ddp', 'fsdp')]]
    return res

if __name__ == '__main__':
    child(sys.argv[1], sys.argv[2])
