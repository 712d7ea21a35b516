"""(4) Peak memory of full fine-tuning, LoRA and QLoRA on a ~100M-parameter Llama, each in its own child process
(peak RSS, VmHWM), next to the memory planner's estimate.

Child mode: python -m bench.memory METHOD MODEL_DIR THREADS  -> one JSON line."""
from __future__ import annotations
import json, sys, tempfile
from .common import Result, timed_section, instructions, model_dir, encoded, proc_bytes, run_child

SHAPE_100M = dict(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4, intermediate_size=3072)
BATCH, MAX_LEN, STEPS = 2, 128, 2

def child(method:str, d:str, threads:int):
    import torch
    torch.set_num_threads(threads)
    import peft, transformers, bitsandbytes  # the same imports in every child, so the baselines agree  # noqa
    from domain_tuner.models import load_model, load_tokenizer, count_parameters
    from domain_tuner.methods import TrainConfig, prepare_model, training_precision
    from domain_tuner.memory import estimate_memory, step_tokens
    from domain_tuner.train import fit, LossHistory
    tok = load_tokenizer(d)
    ds = encoded(instructions(BATCH * STEPS, seed=5, answer_words=60), tok, MAX_LEN)
    cfg = TrainConfig(method=method, batch_size=BATCH, max_length=MAX_LEN, max_steps=STEPS, logging_steps=1)
    plan = estimate_memory(d, cfg, device='cpu', **step_tokens(ds, cfg))  # as `train` plans a run
    base = proc_bytes('VmRSS')
    model = prepare_model(load_model(d, quantize=cfg.quantize, precision=training_precision(cfg)), cfg)
    after_load = proc_bytes('VmHWM')
    with tempfile.TemporaryDirectory() as tmp: fit(model, tok, ds, None, cfg, out=tmp, callbacks=[LossHistory(None)])
    print(json.dumps(dict(method=method, baseline=base, peak=proc_bytes('VmHWM'), load_peak=after_load,
                          params=count_parameters(model), estimate=plan.total * 1e9, plan={k: getattr(plan, k) for k in
                          ('weights', 'gradients', 'optimizer', 'activations', 'logits', 'load')})))

def peak_memory(threads:int=1)->Result:
    d = model_dir('100m', **SHAPE_100M)
    res = Result('memory', '4. Peak memory on a ~100M-parameter Llama (child process RSS)')
    with timed_section(res):
        out = {}
        for m in ('full', 'lora', 'qlora'):
            out[m] = run_child('bench.memory', m, d, threads)
        G = 1e9
        peak = {m: r['peak'] / G for m, r in out.items()}
        delta = {m: (r['peak'] - r['baseline']) / G for m, r in out.items()}
        est = {m: r['estimate'] / G for m, r in out.items()}
        err = {m: est[m] / delta[m] - 1 for m in out}
        lf, ql = peak['lora'] / peak['full'], peak['qlora'] / peak['lora']
        lf_d, ql_d = delta['lora'] / delta['full'], delta['qlora'] / delta['lora']
        res.figures.update(peak_gb=peak, above_baseline_gb=delta, estimate_gb=est, estimate_error=err,
                           lora_over_full=lf, qlora_over_lora=ql, lora_over_full_above_baseline=lf_d, qlora_over_lora_above_baseline=ql_d)
        res.targets += [("LoRA / full peak RSS <= 0.35", f"{lf:.3f} (above the import baseline: {lf_d:.3f})", lf <= 0.35),
                        ("QLoRA / LoRA peak RSS <= 0.45", f"{ql:.3f} (above the import baseline: {ql_d:.3f})", ql <= 0.45),
                        *[(f"planner estimate within 15% of measured ({m})", f"{err[m]:+.1%}", abs(err[m]) <= 0.15) for m in out]]
        n = out['full']['params']['total']
        res.notes += [f"Model: Llama {SHAPE_100M}, vocab 1024: {n/1e6:.1f}M parameters, fp32 on the CPU; {STEPS} AdamW steps "
                      f"of batch {BATCH} x up to {MAX_LEN} tokens, LoRA r=16 on all linear layers, QLoRA = the same on an NF4 "
                      f"base (bitsandbytes on the CPU). Each method runs in a fresh child process that imports the same "
                      f"libraries; peak = VmHWM at the end, baseline = RSS after the imports, before loading the model.",
                      "| method | peak RSS GB | above baseline GB | planner estimate GB | estimate / measured - 1 |", "|---|---|---|---|---|",
                      *[f"| {m} | {peak[m]:.3f} | {delta[m]:.3f} | {est[m]:.3f} | {err[m]:+.1%} |" for m in out],
                      "The planner estimates what training adds above the running interpreter (weights, gradients, optimizer "
                      "state, activations, logits, the loading peak), so it is compared with the peak above the baseline."]
    return res

if __name__ == '__main__':
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
