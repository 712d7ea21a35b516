"""(9) The real base: domain-tuner against TRL's SFTTrainer on SmolLM2-135M-Instruct (the demo's base, from its GGUF
file) for LoRA, full fine-tuning and QLoRA: each side a whole process on the same encoded records; tokens/s, the
ratio, held-out response loss, the share of this machine's measured matmul ceiling, and the memory planner against the
measured peak.

    .venv/bin/python -m bench --real                 # the three methods, both sides: about 25 minutes on 2 cores

Child mode: python -m bench.real SIDE METHOD THREADS N_TRAIN N_EVAL  -> one JSON line."""
from __future__ import annotations
import json, os, sys, tempfile, time
from pathlib import Path
from .common import Result, timed_section, median, proc_bytes, run_child

BASE = 'builtin:smollm2-135m-instruct'
BATCH, MAX_LEN, R, ALPHA = 8, 512, 16, 32
LR = dict(lora=2e-4, qlora=2e-4, full=2e-5)  # the usual peaks (and domain-tuner's defaults); the same on both sides
SPEEDUP = dict(lora=1.3, full=1.2, qlora=1.2)  # the targets: ours / TRL at equal loss
LOSS_TOL = 0.05                                 # equal response loss: within 5%
FLOP_FACTOR = dict(full=6, lora=4, qlora=4)     # per parameter and token: forward 2, input gradients 2, weight gradients 2

def matmul_ceiling(dtype:str='float32', m:int=4096, k:int=576, n:int=1536, seconds:float=2.0)->float:
    "GFLOPS of one (m x k) @ (k x n) matmul, the shape of SmolLM2's MLP at a batch of 4,096 tokens, at this thread count."
    import torch
    dt = getattr(torch, dtype)
    a, b = torch.randn(m, k, dtype=dt), torch.randn(k, n, dtype=dt)
    for _ in range(3): a @ b
    reps, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds: a @ b; reps += 1
    return 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9

def records(tok, n_train:int, n_eval:int):
    "The demo's stage-2 task data (statements, glossary, abstention) to train on; its held-out benchmark to score the loss on."
    from domain_tuner.run import resolve_files
    from domain_tuner.data import load_records
    from .common import encoded
    root = Path(tempfile.gettempdir())/'domain_tuner_bench_real'
    train = load_records(resolve_files(['builtin:finance-reports/train'], root, seed=0, n=max(320, n_train))).records
    per = max(1, n_eval // 7)
    held = [r for f in resolve_files(['builtin:finance-reports/bench'], root, seed=0, n=max(320, n_train))
            for r in load_records([f]).records[:per]]
    return encoded(train[:n_train], tok, MAX_LEN), encoded(held, tok, MAX_LEN)

def useful_flops(model, method:str, tokens:int, supervised:int)->float:
    """Useful training FLOPs for an epoch: every token through the transformer's linear layers, the output layer only at
    supervised positions (the loss is nowhere else), times 6 for full fine-tuning and 4 for adapters (frozen weights need
    no weight gradient). Attention scores (about 5% at these lengths) and the adapters' rank-16 matmuls are not counted."""
    import torch
    base = model.get_base_model() if hasattr(model, 'get_base_model') else model
    cfg = base.config
    head = cfg.vocab_size * cfg.hidden_size
    body = 0
    for name, mod in base.named_modules():
        if 'lm_head' in name or 'lora_' in name: continue
        if isinstance(mod, torch.nn.Linear):  # bitsandbytes' Linear4bit is one too
            body += mod.in_features * mod.out_features
    return FLOP_FACTOR[method] * (body * tokens + head * supervised)

def child(side:str, method:str, threads:int, n_train:int, n_eval:int):
    import torch, warnings
    torch.set_num_threads(threads)
    import peft, transformers, trl, bitsandbytes  # noqa: the same imports in every child, so the baselines agree
    from .training import _quiet_logs, response_loss
    _quiet_logs(); warnings.filterwarnings('ignore')
    from domain_tuner.resolve import resolve_model
    from domain_tuner.models import load_model, load_tokenizer
    from domain_tuner.methods import TrainConfig, prepare_model, training_precision, optimizer_name
    from domain_tuner.memory import estimate_memory, step_tokens
    from domain_tuner.core import select_precision, seed_everything
    from domain_tuner.train import fit, LossHistory
    from dataclasses import replace
    base = resolve_model(BASE); tok = load_tokenizer(base)
    train_ds, eval_ds = records(tok, n_train, n_eval)
    cfg = TrainConfig(method=method, r=R, alpha=ALPHA, dropout=0.0, lr=LR[method], batch_size=BATCH, max_length=MAX_LEN,
                      epochs=1, scheduler='linear', warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0, logging_steps=4,
                      precision=None if side == 'ours' else 'fp32')
    precision = select_precision(cfg.precision, measure=True)  # ours: measured here; TRL: fp32 as configured
    used = training_precision(cfg, precision)
    plan = estimate_memory(base, cfg, dtype=used.load_dtype, device='cpu',
                           **step_tokens(train_ds, cfg))  # as `train` plans a run
    baseline = proc_bytes('VmRSS')
    seed_everything(0)
    model = prepare_model(load_model(base, quantize=cfg.quantize, precision=used), cfg)
    tokens = sum(len(x) for x in train_ds['input_ids'])
    supervised = sum(sum(1 for t in x if t != -100) for x in train_ds['labels'])
    with tempfile.TemporaryDirectory() as tmp:
        if side == 'ours':
            tr, m, _ = fit(model, tok, train_ds, None, replace(cfg, eval_before=False), out=tmp,
                           callbacks=[LossHistory(None)])
            secs, steps, n_rec = m['train_seconds'], m['steps'], len(tr.train_dataset)
        else:
            from trl import SFTConfig, SFTTrainer
            from transformers.trainer_callback import PrinterCallback
            args = SFTConfig(output_dir=tmp, per_device_train_batch_size=BATCH, num_train_epochs=1, learning_rate=LR[method],
                             lr_scheduler_type='linear', warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
                             optim=optimizer_name(cfg, precision), use_cpu=True, bf16=False, gradient_checkpointing=False,
                             logging_steps=4, save_strategy='no', report_to='none', seed=0, data_seed=0,
                             max_length=MAX_LEN, packing=False, disable_tqdm=True, dataloader_num_workers=0)
            tr = SFTTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tok)
            tr.remove_callback(PrinterCallback)
            t = time.perf_counter(); tr.train(); secs = time.perf_counter() - t
            steps, n_rec = tr.state.global_step, len(tr.train_dataset)
    peak = proc_bytes('VmHWM')
    loss = response_loss(model, eval_ds)
    print(json.dumps(dict(side=side, method=method, seconds=secs, steps=steps, records=n_rec, tokens=tokens,
                          supervised=supervised, loss=loss, precision=used.reason, autocast=used.autocast, load_dtype=used.load_dtype,
                          flops=useful_flops(model, method, tokens, supervised), baseline=baseline, peak=peak,
                          estimate=plan.total * 1e9, plan={k: getattr(plan, k) for k in
                          ('weights', 'gradients', 'optimizer', 'activations', 'logits', 'load')})), flush=True)

def real_suite(threads:int|None=None, n_train:int=128, n_eval:int=56, methods=('lora', 'full', 'qlora'), repeats:int=1)->Result:
    "(9) Ours against TRL on the real base, per method, each side a whole process, alternated."
    import torch
    threads = threads or os.cpu_count()
    torch.set_num_threads(threads)
    res = Result('real', '9. The real base (SmolLM2-135M-Instruct): domain-tuner vs TRL SFTTrainer, each a whole process')
    with timed_section(res):
        ceiling = dict(float32=matmul_ceiling('float32'), bfloat16=matmul_ceiling('bfloat16'))
        rows = {}
        for method in methods:
            runs = {'ours': [], 'trl': []}
            for r in range(repeats):
                for side in (('ours', 'trl') if r % 2 == 0 else ('trl', 'ours')):
                    print(f"[bench real] {method} {side} ...", flush=True)
                    runs[side].append(run_child('bench.real', side, method, threads, n_train, n_eval))
            rows[method] = {s: dict(v[0], seconds=median([x['seconds'] for x in v])) for s, v in runs.items()}
        res.figures.update(ceiling_gflops=ceiling, runs=rows, threads=threads)
        lines = []
        for method, sides in rows.items():
            o, t = sides['ours'], sides['trl']
            tps = {s: sides[s]['tokens'] / sides[s]['seconds'] for s in sides}
            ratio, rel = tps['ours'] / tps['trl'], o['loss'] / t['loss'] - 1
            share = {s: sides[s]['flops'] / sides[s]['seconds'] / 1e9 /
                     ceiling['bfloat16' if sides[s]['load_dtype'] == 'bfloat16' or sides[s]['autocast'] else 'float32']
                     for s in sides}
            err = o['estimate'] / (o['peak'] - o['baseline']) - 1
            res.figures[method] = dict(tokens_per_s=tps, ratio=ratio, loss=dict(ours=o['loss'], trl=t['loss']),
                                       ceiling_share=share, planner_error=err)
            res.targets += [(f"{method}: both sides train on the same records", f"{o['records']} vs {t['records']}",
                             o['records'] == t['records']),
                            (f"{method}: equal response loss (within {LOSS_TOL:.0%})", f"{o['loss']:.4f} vs {t['loss']:.4f} ({rel:+.1%})",
                             abs(rel) <= LOSS_TOL),
                            (f"{method}: ours / TRL >= {SPEEDUP[method]}x", f"{ratio:.2f}x", ratio >= SPEEDUP[method]),
                            (f"{method}: planner within 15% of the measured peak", f"{err:+.1%}", abs(err) <= 0.15)]
            for s in ('ours', 'trl'):
                x = sides[s]
                lines.append(f"| {method} | {s} | {x['records']} | {x['steps']} | {tps[s]:,.0f} | {x['loss']:.4f} | "
                             f"{x['flops'] / x['seconds'] / 1e9:,.0f} | {share[s]:.0%} | {x['load_dtype']}"
                             f"{' + ' + x['autocast'] + ' autocast' if x['autocast'] else ''} | "
                             f"{(x['peak'] - x['baseline']) / 1e9:.2f} | {x['estimate'] / 1e9:.2f} |")
        any_run = next(iter(rows.values()))['ours']
        res.notes += [
            f"Base: SmolLM2-135M-Instruct (`{BASE}`, the demo's GGUF base dequantized to fp32); {any_run['records']} records of the "
            f"demo's task data ({any_run['tokens']:,} tokens, {any_run['supervised']:,} of them supervised), one epoch at batch "
            f"{BATCH}, AdamW, linear schedule without warm-up, clipping 1.0, LoRA r={R} alpha={ALPHA} dropout 0 on all linear "
            f"layers, lr {LR['lora']:g} for adapters and {LR['full']:g} for full fine-tuning; the held-out loss is on {n_eval} "
            f"items of the demo's benchmark (companies never trained on). Both sides get the same encoded examples (labels "
            f"-100 outside responses) and the same prepared model (the same adapter initialisation); each side is a fresh "
            f"process with {threads} torch threads. TRL: `bf16=False, gradient_checkpointing=False`, no packing, its default "
            f"collator. Ours: `fit` as the demo runs it, with the CPU precision it measures here.",
            f"Matmul ceiling here ({threads} threads, 4096x576 @ 576x1536): {ceiling['float32']:,.0f} GFLOPS fp32, "
            f"{ceiling['bfloat16']:,.0f} bf16. Useful FLOPs: {FLOP_FACTOR['full']} per parameter and token for full fine-tuning, "
            f"{FLOP_FACTOR['lora']} for adapters, over the transformer's linear layers at every token and the output layer at "
            "supervised tokens only; the share is useful GFLOPS over the ceiling of the precision the side computes in.",
            "| method | side | records | steps | tokens/s | held-out response loss | useful GFLOPS | share of ceiling | weights | "
            "training adds (GB, peak RSS above the imports) | planner (GB) |",
            "|---|---|---|---|---|---|---|---|---|---|---|", *lines]
    return res

if __name__ == '__main__':
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
