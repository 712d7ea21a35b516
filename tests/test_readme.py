"""The README's results are generated from run records, not typed: the table in nbs/index.ipynb (and so README.md) is
what `results_markdown` writes from the committed run records in nbs/results/."""
import json
from pathlib import Path
from domain_tuner.report import results_markdown, read_results

ROOT = Path(__file__).resolve().parents[1]


def _results_cell():
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    cells = [c for c in nb['cells'] if c['cell_type'] == 'code' and 'results_markdown' in ''.join(c['source'])]
    assert len(cells) == 1, "index.ipynb should have one results cell"
    return cells[0]


def test_readme_results_come_from_the_run_records():
    records, stage1 = read_results(ROOT/'nbs'/'results')
    assert records, "the README quotes the demo's run record"
    want = results_markdown(records, stage1)
    md = [o['data']['text/markdown'] for o in _results_cell()['outputs'] if 'text/markdown' in o.get('data', {})]
    out = ''.join(''.join(v) if isinstance(v, list) else v for v in md)  # nbdev-clean stores outputs as lists of lines
    assert out == want, "run `python tools/readme.py --results` after a new demo run"
    assert want in (ROOT/'README.md').read_text()


def test_records_name_the_cpu_and_hold_intervals():
    for p in sorted((ROOT/'nbs'/'results').glob('demo_seed*.json')):
        r = json.loads(p.read_text())
        assert r['environment']['cpu']['model'] and 'avx512_bf16' in r['environment']['cpu']
        assert all(len(row['exact_match']) == 3 for row in r['scores'])  # (mean, low, high)
        assert set(r['final_models']) == set(r['settings']['run']['methods'].replace(' ', '').split(','))


def test_the_demo_record_holds_the_preference_stage():
    "Issue 24: run.json keeps, per method with a preference stage, both rates before and after with a paired interval."
    records, _ = read_results(ROOT/'nbs'/'results')
    pref = records[0]['preference']
    assert pref, "the demo has a preference stage on at least one track"
    for m, v in pref.items():
        for k in ('invented_figure', 'exact_match'):
            x = v[k]
            assert {'before', 'after', 'paired_difference', 'n'} <= set(x)
            d, lo, hi = x['paired_difference']
            assert lo <= d <= hi and abs(d - (x['after'] - x['before'])) < 1e-9
        assert v['invented_figure']['n'] >= 40  # enough unanswerable items for the interval to say something

def test_the_multi_gpu_memory_table_is_the_planners():
    # README's per-GPU plan for an 8B model is `estimate_memory`'s, cell for cell
    from domain_tuner.memory import estimate_memory
    from domain_tuner.methods import TrainConfig
    text = (Path(__file__).resolve().parents[1]/'README.md').read_text()
    for m in ('full', 'lora', 'qlora'):
        cells = [f"{estimate_memory('Llama-3-8B', TrainConfig(method=m, batch_size=1, max_length=2048, gradient_checkpointing=True, distributed=s), device='cuda', overhead_gb=0.5, processes=n).total:.0f}"
                 for s, n in (('ddp', 1), ('ddp', 2), ('zero2', 2), ('fsdp', 2), ('fsdp', 4), ('fsdp', 8))]
        assert f"| {m} | " + ' | '.join(cells) + ' |' in text, (m, cells)
