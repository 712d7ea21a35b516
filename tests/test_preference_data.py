"""Preference data (issue 24): bad pairs and judged answers name FILE:LINE and are accounted for in lenient mode;
LLaMA-Factory's own DPO and KTO files are read and trained on; `domain-tuner prepare` and `train --objective` work end
to end from the command line."""
import json
from pathlib import Path
import pytest
from domain_tuner.core import DomainTunerError
from domain_tuner.data import load_records, prepare
from conftest import run_cli

LF = Path(__file__).resolve().parents[2]/'shared'/'data'/'llama-factory'
Q = "What was revenue in 2023?"
GOOD = json.dumps({"prompt": Q, "chosen": "$1,496.5 million.", "rejected": "$2,104.0 million."})
_m = lambda c: [{"role": "user", "content": Q}, {"role": "assistant", "content": c}]
# (name, bad row, what the message must say): each shape a preference file goes wrong in
BAD = [
    ('identical answers', {"prompt": Q, "chosen": "$1.5 million.", "rejected": "$1.5  million."},
     "chosen and rejected answers are identical"),
    ('empty side', {"prompt": Q, "chosen": "$1.5 million.", "rejected": "   "}, "empty answer: field 'rejected' is blank"),
    ('missing side', {"prompt": Q, "chosen": "$1.5 million."}, "missing field 'rejected'"),
    ('mismatched prompt', {"chosen": _m("$1.5 million."),
                           "rejected": [{"role": "user", "content": "Other?"}, {"role": "assistant", "content": "No."}]},
     "mismatched prompt: chosen and rejected differ at turn 1"),
    ('answer of two turns', {"prompt": Q, "chosen": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
                             "rejected": "c"}, "field 'chosen' must be one assistant answer"),
    ('prompt ends with an answer', {"prompt": _m("$1.5 million."), "chosen": "a", "rejected": "b"},
     "must end with the user's turn"),
    ('wrong type', {"prompt": Q, "chosen": 1496.5, "rejected": "b"}, "field 'chosen' is float, expected a string or a list of messages"),
    ('unknown role', {"conversations": [{"from": "critic", "value": Q}], "chosen": {"from": "gpt", "value": "a"},
                      "rejected": {"from": "gpt", "value": "b"}}, "unknown role 'critic'"),
    ('v1 side missing', {"chosen_messages": _m("a")}, "missing field 'rejected_messages'"),
]
BAD_KTO = [
    ('label not a boolean', {"prompt": Q, "completion": "a", "label": "yes"}, "a KTO label is true"),
    ('label a number', {"messages": _m("a"), "label": 1}, "a KTO label is true"),
    ('judged answer missing', {"messages": [{"role": "user", "content": Q}], "label": True}, "conversation has no assistant turn"),
    ('empty judged answer', {"prompt": Q, "completion": " ", "label": False}, "empty answer: field 'completion' is blank"),
]

@pytest.mark.parametrize('name,row,what', BAD + BAD_KTO, ids=[b[0] for b in BAD + BAD_KTO])
def test_bad_preference_row_names_file_and_line(tmp_path, name, row, what):
    good = GOOD if (name, row, what) in BAD else json.dumps({"prompt": Q, "completion": "$1.5 million.", "label": True})
    p = tmp_path/'prefs.jsonl'
    p.write_text(f"{good}\n{json.dumps(row)}\n")
    with pytest.raises(DomainTunerError) as e: load_records(p)
    msg = str(e.value)
    assert f"{p}:2: " in msg and what in msg and "fix:" in msg, msg
    res = load_records(p, lenient=True)  # set aside with its line, the good row kept, the counts reconcile
    assert [(r['file'], r['line']) for r in res.rejected] == [(str(p), 2)] and what in res.rejected[0]['reason']
    c = res.counts
    assert c['read'] == c['accepted'] + c['rejected'] + c['blank'] and c['accepted'] == 1

def test_all_bad_shapes_in_one_file_are_each_accounted(tmp_path, tiny_dir):
    p = tmp_path/'prefs.jsonl'
    rows = [GOOD] + [json.dumps(r) for _, r, _ in BAD] + [GOOD.replace('2,104.0', '1,900.0'), '']
    p.write_text("\n".join(rows) + "\n")
    prep = prepare([p], out=tmp_path/'prep', tokenizer=tiny_dir, lenient=True, eval_fraction=0.0, figure=False)
    c = prep.report['counts']
    assert (c['read'], c['accepted'], c['rejected'], c['blank']) == (len(BAD) + 3, 2, len(BAD), 1), c
    assert c['read'] == c['accepted'] + c['rejected'] + c['duplicates'] + c['blank']
    assert prep.report['by_format'] == {'preference': 2}
    lines = [json.loads(l) for l in (tmp_path/'prep'/'rejected.jsonl').read_text().splitlines()]
    assert sorted(r['line'] for r in lines) == list(range(2, len(BAD) + 2))

@pytest.mark.skipif(not LF.is_dir(), reason="LLaMA-Factory's demo files are not in ../shared/data")
@pytest.mark.parametrize('name,fmt', [('dpo_en_demo.json', 'preference'), ('kto_en_demo.json', 'kto'),
                                      ('v1_dpo_demo.jsonl', 'preference')])
def test_llama_factory_files_are_read_as_preference_data(tmp_path, tiny_dir, name, fmt):
    prep = prepare([LF/name], out=tmp_path/'prep', tokenizer=tiny_dir, lenient=True, figure=False)
    c = prep.report['counts']
    assert c['read'] == c['accepted'] + c['rejected'] + c['duplicates'] + c['blank']
    assert c['accepted'] >= 0.9 * c['read'], c
    assert set(prep.report['by_format']) == {fmt}
    first = json.loads((tmp_path/'prep'/'train.jsonl').read_text().splitlines()[0])
    assert ('rejected' in first) if fmt == 'preference' else isinstance(first['label'], bool)

@pytest.mark.skipif(not LF.is_dir(), reason="LLaMA-Factory's demo files are not in ../shared/data")
@pytest.mark.parametrize('name,objective', [('dpo_en_demo.json', 'dpo'), ('kto_en_demo.json', 'kto')])
def test_a_few_steps_on_llama_factory_files(tmp_path, tiny_dir, name, objective):
    "DPO steps on the DPO file, KTO steps on the KTO file, from the command line; the run record says what trained."
    out = tmp_path/'run'
    r = run_cli('train', '--base', tiny_dir, '--data', LF/name, '--out', out, '--method', 'lora', '--objective', objective,
                '--max-steps', '3', '--batch-size', '4', '--max-length', '256', '--logging-steps', '1')
    rec = json.loads((out/'run_record.json').read_text())
    assert rec['config']['objective'] == objective and rec['metrics']['steps'] == 3
    losses = [l['loss'] for l in rec['history'] if 'loss' in l]
    assert len(losses) == 3 and all(x == x for x in losses)
    assert abs(losses[0] - (0.6931 if objective == 'dpo' else 0.5)) < 1e-3  # a fresh adapter is its own reference
    key = 'accuracy' if objective == 'dpo' else 'kl'
    assert any(key in l for l in rec['history']), rec['history'][:3]
    assert (out/'adapter_model.safetensors').exists()

def test_supervised_training_refuses_answers_judged_bad(tmp_path, tiny_dir):
    p = tmp_path/'kto.jsonl'
    p.write_text("\n".join(json.dumps({"prompt": Q, "completion": a, "label": ok}) for a, ok in
                           [("$1.5 million.", True), ("$9 billion.", False)] * 4) + "\n")
    r = run_cli('train', '--base', tiny_dir, '--data', p, '--out', tmp_path/'o', '--max-steps', '1', check=False)
    assert r.returncode != 0 and "teach the answers judged bad" in r.stderr and f"{p}:" in r.stderr, r.stderr[-2000:]

@pytest.mark.skipif(not LF.is_dir(), reason="LLaMA-Factory's demo files are not in ../shared/data")
def test_prepare_command_names_the_preference_format(tmp_path, tiny_dir):
    run_cli('prepare', LF/'v1_dpo_demo.jsonl', '--out', tmp_path/'prep', '--tokenizer', tiny_dir, '--lenient')
    rep = json.loads((tmp_path/'prep'/'report.json').read_text())
    c = rep['counts']
    assert rep['by_format'] == {'preference': 10} and c['read'] == c['accepted'] + c['rejected'] + c['duplicates'] + c['blank']
