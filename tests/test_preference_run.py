"""A preference stage inside a run (issue 24): pairs mined from the previous stage's model, a DPO stage on one track
only, and the run record's `preference.<method>` block (before, after, paired difference, n) that the README reads."""
import json
import pytest
from domain_tuner.run import run
from domain_tuner.plan import plan_run
from domain_tuner.settings import parse_settings

SETTINGS = """
[run]
name = preference
out = {out}
methods = lora, full
builtin_examples = 160
[model]
base = builtin:finance-base
[data.tasks]
files = builtin:finance-reports/train
eval_fraction = 0.05
[train]
batch_size = 4
max_length = 384
lr = 1e-3
logging_steps = 1
[stage.tasks]
data = tasks
max_steps = 2
[stage.preference]
methods = lora
data = mined
objective = dpo
beta = 0.1
max_steps = 2
batch_size = 2
mine_k = 2
mine_questions = 12
mine_max_new_tokens = 16
mine_balance = false                # a 2M model's few pairs may all be of one kind
[eval]
bench = builtin:finance-reports/bench/abstain, builtin:finance-reports/bench/extract
metrics = exact_match, invented_figure, over_abstention
limit = 6
task_limits = abstain:8
after_each_stage = false
max_new_tokens = 16
batch_size = 16
"""

@pytest.fixture(scope='module')
def pref_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('pref')/'run'
    res = run(plan_run(parse_settings(SETTINGS.format(out=out), 'pref.ini')), plot=None)
    return res, json.loads((out/'run.json').read_text())

def test_the_stage_joins_only_the_tracks_it_names(pref_run):
    res, rec = pref_run
    assert [s['name'] for s in res.curricula['lora'].stages[1:]] == ['tasks', 'preference']
    assert [s['name'] for s in res.curricula['full'].stages[1:]] == ['tasks']
    assert set(rec['preference']) == {'lora'}

def test_the_record_holds_before_after_and_a_paired_interval(pref_run):
    res, rec = pref_run
    p = rec['preference']['lora']
    assert (p['objective'], p['before_stage'], p['stage']) == ('dpo', 'tasks', 'preference')
    for k in ('invented_figure', 'exact_match', 'over_abstention'):
        x = p[k]
        d, lo, hi = x['paired_difference']
        assert lo <= d <= hi and abs(d - (x['after'] - x['before'])) < 1e-9
    assert p['invented_figure']['n'] == 8                 # the unanswerable items: task_limits abstain:8
    assert p['exact_match']['n'] == 8 + 6                 # every item
    assert p['over_abstention']['n'] == 6                 # the answerable ones
    # the 'before' is the same model's evaluation after the tasks stage, scored although after_each_stage is false
    assert ('lora', 'tasks') in res.evals and ('lora', 'preference') in res.evals

def test_mined_pairs_are_saved_and_accounted_for(pref_run):
    res, rec = pref_run
    m = rec['preference']['lora']['mined']
    assert m['questions'] == 12 and m['samples'] == 12 * 2 and m['left_out_to_balance'] == 0
    assert sum(m['verdicts'].values()) == m['samples']
    pairs = [json.loads(l) for l in (res.out/'lora'/'mined'/'pairs.jsonl').read_text().splitlines()]
    assert len(pairs) == m['pairs'] > 0
    assert all(p['messages'][-1]['content'] != p['rejected'] for p in pairs)

def test_report_and_readme_tables_show_the_stage(pref_run):
    from domain_tuner.report import results_markdown
    res, rec = pref_run
    assert 'The preference stage, against the same model before it' in (res.out/'report.md').read_text()
    md = results_markdown([rec])
    assert 'on **lora**' in md and 'invented figures (unanswerable items)' in md

def test_task_limits_are_read_and_a_bad_entry_names_its_line():
    from domain_tuner.run import _task_limits
    from domain_tuner.core import DomainTunerError
    head = "[data.d]\nfiles = x.jsonl\n[stage.s]\ndata = d\n[eval]\n"
    assert _task_limits(plan_run(parse_settings(head + "task_limits = abstain:80, bare_prose:30\n", 'x.ini'))) == \
        {'abstain': 80, 'bare_prose': 30}
    with pytest.raises(DomainTunerError) as e:
        _task_limits(plan_run(parse_settings(head + "task_limits = abstain:80, bare\n", 'x.ini')))
    assert 'x.ini:6' in str(e.value) and "'bare' is not TASK:N" in str(e.value)
