"""(11) The memory planner on real data: LoRA and full fine-tuning of the demo's base (SmolLM2-135M-Instruct) on the
table-and-text sample in ../shared/data/finance-tableqa (real annual reports, prompts up to ~660 tokens), batch 8,
each in its own child process: the plan (from the data, as `train` makes it) next to the measured peak RSS.

Child mode: python -m bench.tableqa METHOD STEPS  -> one JSON line."""
from __future__ import annotations
import json, sys, tempfile
from pathlib import Path
from .common import ROOT, Result, timed_section, proc_bytes, run_child

DATA = ROOT.parent/'shared'/'data'/'finance-tableqa'/'train.jsonl'
BATCH, MAX_LEN, STEPS = 8, 1024, 2

def child(method:str, steps:str):
    import torch, peft, transformers  # noqa: the same imports in every child, before the baseline
    torch.set_num_threads(2)
    from domain_tuner.resolve import resolve_model
    from domain_tuner.models import load_tokenizer
    from domain_tuner.load import load_records
    from domain_tuner.methods import TrainConfig, load_for_training
    from domain_tuner.memory import estimate_memory, step_tokens
    from domain_tuner.train import encode_records, fit, LossHistory
    base = resolve_model('builtin:smollm2-135m-instruct')
    tok = load_tokenizer(base)
    cfg = TrainConfig(method=method, batch_size=BATCH, max_length=MAX_LEN, max_steps=int(steps), logging_steps=1,
                      eval_before=False)
    ds = encode_records(load_records(DATA).records, tok, cfg)
    st = step_tokens(ds, cfg)
    plan = estimate_memory(base, cfg, device='cpu', **st)  # as `train` plans a run
    baseline = proc_bytes('VmRSS')
    model = load_for_training(base, cfg)
    with tempfile.TemporaryDirectory() as t: fit(model, tok, ds, None, cfg, out=t, callbacks=[LossHistory(None)])
    print(json.dumps(dict(method=method, step_tokens=st, examples=len(ds), plan=plan.total * 1e9,
                          parts={k: getattr(plan, k) for k in ('weights', 'gradients', 'optimizer', 'activations',
                                                                'logits', 'load')},
                          measured=proc_bytes('VmHWM') - baseline)))

def planner_on_tableqa()->Result:
    res = Result('tableqa', '11. The memory planner on real data (SmolLM2, table-and-text QA, child process RSS)')
    with timed_section(res):
        if not DATA.exists():
            res.notes.append(f"skipped: {DATA} is not on this machine"); return res
        out = {m: run_child('bench.tableqa', m, STEPS) for m in ('lora', 'full')}
        G = 1e9
        err = {m: r['plan'] / r['measured'] - 1 for m, r in out.items()}
        res.figures.update(plan_gb={m: r['plan'] / G for m, r in out.items()},
                           measured_gb={m: r['measured'] / G for m, r in out.items()}, error=err,
                           step_tokens={m: r['step_tokens'] for m, r in out.items()})
        res.targets += [(f"planner within 15% of the measured peak ({m})", f"{err[m]:+.1%}", abs(err[m]) <= 0.15)
                        for m in out]
        st = out['lora']['step_tokens']
        res.notes += [f"{out['lora']['examples']} items of {DATA.name}, encoded with the base's chat template (max_length "
                      f"{MAX_LEN}); {STEPS} steps of batch {BATCH}, padding-free: the largest micro-batch the plan reads "
                      f"off the data holds {st['tokens']:,} tokens, {st['supervised']:,} of them trained. fp32 on the CPU, "
                      "two threads. Peak = VmHWM above the RSS after the imports, as the planner counts.",
                      "| method | planned GB | measured GB | plan / measured - 1 | activations planned GB |",
                      "|---|---|---|---|---|",
                      *[f"| {m} | {r['plan'] / G:.2f} | {r['measured'] / G:.2f} | {err[m]:+.1%} | "
                        f"{r['parts']['activations']:.2f} |" for m, r in out.items()]]
    return res

if __name__ == '__main__': child(*sys.argv[1:3])
