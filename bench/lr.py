"""Learning rate by size (issue 23, item 4): the peak learning rate that trains SmolLM2-135M best, for LoRA and full
fine-tuning, on the demo's task data. It calibrates the 135M anchor of `domain_tuner.methods.default_lr`; the anchors
for larger models come from published recipes (QLoRA, Alpaca, LIMA), which cannot be measured on this machine."""
from __future__ import annotations
import tempfile, time
from .common import Result, timed_section

GRID = dict(lora=(2e-4, 5e-4, 1e-3, 2e-3, 4e-3), full=(1e-5, 2e-5, 4e-5, 8e-5, 1.6e-4, 3.2e-4, 6.4e-4))
N_TRAIN, N_EVAL, TOL = 192, 56, 0.02   # 24 steps at batch 8; the default's loss within 2% of the grid's best

def _one(base, tok, train_ds, eval_ds, method:str, lr:float)->float:
    "Held-out response loss after one epoch at peak `lr` (cosine, 5% warm-up, batch 8, fp32, seed 0)."
    from domain_tuner.models import load_model
    from domain_tuner.methods import TrainConfig, prepare_model
    from domain_tuner.core import seed_everything, select_precision
    from domain_tuner.train import fit, LossHistory
    from .training import response_loss
    from .real import BATCH, MAX_LEN, R, ALPHA
    cfg = TrainConfig(method=method, lr=lr, r=R, alpha=ALPHA, batch_size=BATCH, max_length=MAX_LEN, epochs=1,
                      warmup_ratio=0.05, precision='fp32', eval_before=False, logging_steps=8)
    seed_everything(0)
    model = prepare_model(load_model(base, precision=select_precision('fp32')), cfg)
    with tempfile.TemporaryDirectory() as tmp: fit(model, tok, train_ds, None, cfg, out=tmp, callbacks=[LossHistory(None)])
    return response_loss(model, eval_ds)

def _earlier(setup:dict)->dict:
    "Losses an earlier run of this benchmark measured with the same setup on this CPU (results.json): not run again."
    import json
    from pathlib import Path
    store = Path(__file__).with_name('results.json')
    if not store.exists(): return {}
    old = next((r for r in json.loads(store.read_text())['results'] if r['key'] == 'lr'), None)
    if not old or old['figures'].get('setup') != setup: return {}
    return {m: {float(k): v for k, v in f['losses'].items()} for m, f in old['figures'].items() if m != 'setup'}

def lr_by_size(methods=('lora', 'full'))->Result:
    from domain_tuner.resolve import resolve_model
    from domain_tuner.models import load_tokenizer, load_model, count_parameters
    from domain_tuner.methods import default_lr
    from domain_tuner.core import select_precision
    from .real import BASE, records
    res = Result('lr', 'Learning rate by size: the default against a sweep on SmolLM2-135M')
    with timed_section(res):
        base = resolve_model(BASE); tok = load_tokenizer(base)
        n_params = count_parameters(load_model(base, precision=select_precision('fp32')))['total']
        train_ds, eval_ds = records(tok, N_TRAIN, N_EVAL)
        from .common import machine
        setup = dict(base=BASE, n_train=N_TRAIN, n_eval=N_EVAL, cpu=machine()['cpu'], seed=0)
        res.figures['setup'] = setup
        earlier = _earlier(setup)
        res.notes += [f"Base: {BASE} ({n_params / 1e6:.0f}M parameters, fp32); {len(train_ds)} records of the demo's task "
                      f"data, one epoch (24 steps) at batch 8, cosine schedule with 5% warm-up, AdamW, LoRA r=16 alpha=32 "
                      f"on all linear layers; held-out response loss on {len(eval_ds)} items of the demo's benchmark "
                      f"(companies never trained on). Seed 0 for every run, so the runs differ only in the learning rate.",
                      "| method | peak lr | held-out loss | |", "|---|---|---|---|"]
        for method in methods:
            auto, why = default_lr(method, n_params)
            losses = {}
            for lr in sorted(set(GRID[method]) | {auto}):
                if lr in earlier.get(method, {}):  # the same setup on this CPU: measured by an earlier run
                    losses[lr] = earlier[method][lr]; continue
                t = time.perf_counter()
                losses[lr] = _one(base, tok, train_ds, eval_ds, method, lr)
                print(f"    {method} lr {lr:g}: loss {losses[lr]:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
            best = min(losses, key=losses.get)
            for lr, loss in losses.items():
                tag = ' / '.join(x for x in ('best' if lr == best else '', 'default' if lr == auto else '') if x)
                res.notes.append(f"| {method} | {lr:g} | {loss:.4f} | {tag} |")
            res.figures[method] = dict(losses={f"{k:g}": v for k, v in losses.items()}, best=best, default=auto, why=why)
            gap = losses[auto] / losses[best] - 1
            res.targets.append((f"{method}: the default lr ({auto:g}) within {TOL:.0%} of the best held-out loss",
                                f"{gap:+.1%} (best {best:g})", gap <= TOL))
        res.notes += ["The default for a model of another size is interpolated on log-log axes between this anchor and "
                      "published recipes (`domain_tuner.methods.LR_ANCHORS`); `run_record.json` names the anchors a run's "
                      "learning rate came from. A short run wants a higher rate than a long one: these are 24-step "
                      "runs, about the length of the demo's stage (30 steps) and a third of the TAT-QA tutorial's. "
                      "Points an earlier run measured with the same setup on the same CPU are taken from "
                      "results.json rather than run again (the losses are deterministic: seed 0, fp32)."]
    return res
