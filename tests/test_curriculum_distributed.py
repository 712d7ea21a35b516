"""A curriculum under a launcher (issue 26): `Curriculum.run` on 2 CPU processes (gloo), FSDP2 or DDP, with batch 4 per
process, against one process with batch 8: full fine-tuning on documents, then LoRA on conversations, then DPO on pairs
(which merges the LoRA adapter first). Every step's loss, every stage's scores (scored once, by the main process, from
the saved folder) and the final model's logits agree within 1e-3 (relative)."""
import os, sys, json, textwrap
from pathlib import Path
import pytest, torch
from domain_tuner.tiny import tiny_model_dir
from test_train_ddp import _run
from test_train_fsdp import TORCHRUN, need, _logits

SCRIPT = textwrap.dedent('''
    import sys, json
    from domain_tuner.staged import Curriculum, Stage
    from domain_tuner.methods import TrainConfig
    out, base, batch, strategy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    resume = sys.argv[5:] == ['resume']
    docs = [dict(text=f"Revenue grew {i} percent while costs fell {i % 5} percent in year {2000 + i}.")
            for i in range(40)]
    sums = [dict(messages=[dict(role='user', content=f"What is {a} plus {b}?"),
                           dict(role='assistant', content=f"{a} plus {b} is {a + b}.")])
            for a, b in zip(range(1, 41), range(7, 300, 7))]
    def pairs(model, tokenizer):  # a stage's data made from the model before it: called by the main process only
        return [dict(r, rejected=r['messages'][-1]['content'].replace(' is ', ' is not ')) for r in sums[:24]]
    canary = [dict(text="The quick brown fox jumps over the lazy dog."), dict(text="Please summarise the key risks.")]
    cfg = TrainConfig(batch_size=batch, max_length=96, logging_steps=1, optim='adamw_torch', precision='fp32',
                      dropout=0.0, r=8, distributed=None if strategy == 'none' else strategy)
    cur = Curriculum(base, [Stage('text', docs[:32], eval_data=docs[32:], method='full', lr=5e-4, max_steps=4),
                            Stage('tasks', sums[:32], eval_data=sums[32:], method='lora', lr=5e-3, max_steps=4),
                            Stage('prefer', pairs, method='lora', lr=5e-3, max_steps=3,
                                  overrides=dict(objective='dpo'))],
                     config=cfg, canary=canary)
    res = cur.run(out, plot=None, resume=resume)
    print('final', res.final)
''')

def _record(out:Path)->dict: return json.loads((out/'curriculum_record.json').read_text())

def _steps(stage:dict)->list: return [l['loss'] for l in stage['history'] if 'loss' in l]

def _close(a:float, b:float, what:str): assert abs(a - b) <= 1e-3 * max(abs(a), 1e-6), (what, a, b)

@need
@pytest.mark.parametrize('strategy', ['fsdp', pytest.param('ddp', marks=pytest.mark.slow)])  # DDP: `make test-slow`
def test_curriculum_on_two_processes_matches_one(tmp_path, strategy):
    script, base = tmp_path/'cur.py', tiny_model_dir()
    script.write_text(SCRIPT)
    r = _run([TORCHRUN, '--standalone', '--nproc_per_node', '2', str(script), str(tmp_path/'two'), str(base), '4',
              strategy], tmp_path)
    assert r.stdout.count('final ') == 2  # both processes finished every stage
    _run([sys.executable, str(script), str(tmp_path/'one'), str(base), '8', 'none'], tmp_path)
    one, two = _record(tmp_path/'one'), _record(tmp_path/'two')
    assert [s['name'] for s in two['stages']] == ['base', 'text', 'tasks', 'prefer']
    for a, b in zip(one['stages'], two['stages']):
        for k, v in a['eval'].items(): _close(v, b['eval'][k], f"{a['name']} {k}")  # scored the same
        if a['name'] == 'base': continue
        la, lb = _steps(a), _steps(b)
        assert len(la) == len(lb) > 0, (la, lb)
        for x, y in zip(la, lb): _close(x, y, f"{a['name']} loss")
        assert (b['train']['processes'], b['train']['strategy']) == (2, strategy)
    assert two['stages'][3]['base'].endswith('merged')  # the LoRA stage was merged before DPO, by the main process
    la, lb = _logits(tmp_path/'one'/'03-prefer', base), _logits(tmp_path/'two'/'03-prefer', base)
    assert float((la - lb).abs().max()) <= 1e-3 * float(la.abs().max())
    if strategy != 'fsdp': return
    # a run stopped while the main process was scoring a stage (its record says eval: null) resumes by scoring it
    rec = tmp_path/'two'/'02-tasks'/'run_record.json'
    r2 = json.loads(rec.read_text()); r2['stage']['eval'] = None; rec.write_text(json.dumps(r2))
    _run([TORCHRUN, '--standalone', '--nproc_per_node', '2', str(script), str(tmp_path/'two'), str(base), '4',
          strategy, 'resume'], tmp_path)
    again = _record(tmp_path/'two')['stages'][2]
    assert again['eval'] == two['stages'][2]['eval'], (again['eval'], two['stages'][2]['eval'])
    assert json.loads(rec.read_text())['stage']['eval'] == again['eval']

def test_a_curriculum_under_zero3_is_refused(monkeypatch, tmp_path):
    from domain_tuner.staged import Curriculum, Stage
    from domain_tuner.methods import TrainConfig
    from domain_tuner.core import DomainTunerError
    monkeypatch.setenv('WORLD_SIZE', '2')  # as a launcher sets it; refused before any process group is needed
    cur = Curriculum(str(tiny_model_dir()), [Stage('a', [dict(text='x')])], config=TrainConfig(distributed='zero3'))
    with pytest.raises(DomainTunerError, match="a curriculum under zero3 is not supported"): cur.run(tmp_path/'z')

INI = """[run]
name = quick
out = {out}
methods = full, lora
builtin_examples = 1000
[model]
base = builtin:tiny
[data.tasks]
files = builtin:finance/train
limit = 64
[train]
batch_size = 4
max_length = 512
lr = 1e-3
lr.full = 3e-4
[stage.tasks]
data = tasks
max_steps = 4
r = 8
[eval]
bench = builtin:finance/bench/extract
limit = 8
max_new_tokens = 16
"""

@need
def test_whole_run_under_torchrun(tmp_path):
    # `domain-tuner run` launched on 2 processes: both train each method; the main one alone makes the data, scores the
    # base and every method, and writes the report; the others wait for it and print nothing of their own
    (tmp_path/'quick.ini').write_text(INI.format(out=tmp_path/'run'))
    r = _run([TORCHRUN, '--standalone', '--nproc_per_node', '2', '-m', 'domain_tuner.cli', 'run', 'quick.ini',
              '--distributed', 'fsdp', '--plot', 'none'], tmp_path)
    assert r.stdout.count('report: ') == 1 and r.stdout.count('base: ') == 1, r.stdout
    run = json.loads((tmp_path/'run'/'run.json').read_text())
    for m in ('full', 'lora'):
        st = _record(tmp_path/'run'/m)['stages']
        assert [s['name'] for s in st] == ['base', 'tasks'], st
        assert (st[1]['train']['processes'], st[1]['train']['strategy']) == (2, 'fsdp')
    scores = {s['model']: s for s in run['scores']}  # the main process scored the base and both methods
    assert list(scores) == ['base', 'full', 'lora'] and sorted(run['evals']) == ['full/tasks', 'lora/tasks'], scores
    assert scores['full']['perplexity'] < scores['base']['perplexity'], scores  # the sharded training did train
    assert (tmp_path/'run'/'report.md').exists()
