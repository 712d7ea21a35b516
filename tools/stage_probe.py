#!/usr/bin/env python
"""What stage 1 adds, measured once: the demo's LoRA curriculum with and without its first stage (financial text),
same seed, same task data and benchmark, compared item by item (paired 95% intervals). Needs the demo's run in
runs/demo (`make demo`); writes nbs/results/stage1.json, which the README's results quote.

    python tools/stage_probe.py [--method lora]
"""
import argparse, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--method', default='lora'); p.add_argument('--demo', default='runs/demo')
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from domain_tuner.plan import plan_run
    from domain_tuner.run import run
    from domain_tuner.benchmark import EvalResult
    from domain_tuner.intervals import paired_by, scores_with_intervals, supported
    demo = Path(a.demo)
    staged = EvalResult.from_json(next((demo/a.method).glob('eval_*.json')))
    plan = plan_run(ROOT/'settings.ini', [f'run.methods={a.method}', f'run.out={demo}-tasks-only', 'run.export='])
    plan.stages = {m: ss[1:] for m, ss in plan.stages.items()}  # drop stage 1: tasks only
    res = run(plan, plot=None)
    only = res.evals[(a.method, plan.stages[a.method][-1].name)]
    d = {**paired_by(only.examples, staged.examples, 'exact_match'), **paired_by(only.examples, staged.examples, 'exact_match', key='task')}
    out = dict(method=a.method, seed=plan.run.seed, stage1_steps=plan_run(ROOT/'settings.ini').stages[a.method][0].config(plan.train[a.method]).max_steps,
               tasks_only=scores_with_intervals(only.examples, ['exact_match']), staged=scores_with_intervals(staged.examples, ['exact_match']),
               staged_minus_tasks_only={k: dict(diff=v, claim=supported(v)) for k, v in d.items()})
    dest = ROOT/'nbs'/'results'/'stage1.json'; dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1) + '\n'); print(json.dumps(out['staged_minus_tasks_only']['all'])); print(f"wrote {dest}")

if __name__ == '__main__': main()
