"""`domain-tuner train` end to end: a raw data file trains whole (every valid, non-duplicate row), what was dropped is
printed before training and recorded; bad input is an error that says what to change."""
import os, json, math, random, subprocess, sys
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest, torch
from domain_tuner.core import DomainTunerError
from domain_tuner.tiny import tiny_model_dir

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def base(): return tiny_model_dir()


INSTRUCTIONS = ["What was revenue in {y}?", "Report net income for {y}.", "State the operating margin in {y}.",
                "What were total assets at the end of {y}?", "Give the cash balance for {y}.", "What did capex reach in {y}?",
                "How much debt was outstanding in {y}?", "What was EBITDA in {y}?", "Report free cash flow for {y}.",
                "What was the dividend per share in {y}?", "State gross profit for {y}."]


def templated_rows(n, seed=0):
    "Instruction rows from 11 templates with varying figures: near-duplicates of each other, but each one a real example."
    rng = random.Random(seed)
    return [dict(instruction=rng.choice(INSTRUCTIONS).format(y=rng.randint(2001, 2024)),
                 output=f"${rng.randint(1, 999)}.{rng.randint(0, 9)} million") for _ in range(n)]


def test_cli_trains_on_every_valid_row(base, tmp_path):
    rows = templated_rows(1960)
    rows += rows[:40]  # 40 exact duplicates
    keys = [json.dumps(r, sort_keys=True) for r in rows]
    unique = len(set(keys))
    lines = keys[:]
    lines[10], lines[500] = '{"instruction": "no output here"}', 'not json at all'  # two invalid rows
    raw = tmp_path/'rows.jsonl'
    raw.write_text('\n'.join(lines) + '\n')
    expect = len(set(keys[:10] + keys[11:500] + keys[501:]))  # the valid rows without exact duplicates
    r = subprocess.run([sys.executable, '-m', 'domain_tuner.cli', 'train', '--base', str(base), '--data', str(raw),
                        '--method', 'lora', '--out', str(tmp_path/'out'), '--batch-size', '8', '--max-length', '64',
                        '--logging-steps', '1000', '--plot', 'none'], capture_output=True, text=True,
                       env=dict(os.environ, DOMAIN_TUNER_QUIET='1', OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(l for l in r.stdout.splitlines() if l.startswith('data: read'))
    print(line)
    assert f"training on {expect:,}" in line and "read 2,000" in line and "no eval split" in line, line
    assert f"{2000 - 2 - expect:,} exact duplicate" in line, line
    rec = json.loads((tmp_path/'out'/'run_record.json').read_text())
    acc = rec['data']['accounting']
    assert acc['read'] == 2000 and acc['train'] == expect and acc['eval'] == 0
    assert acc['train'] + sum(acc['dropped'].values()) == 2000, acc  # every row accounted for
    assert acc['dropped']['exact duplicate'] == 2000 - 2 - expect >= 39  # (row 10's copy is no longer a duplicate)
    assert sum(acc['dropped'].values()) - acc['dropped']['exact duplicate'] == 2
    assert {e['line'] for e in acc['dropped_examples']} == {11, 501}  # the invalid rows, by line
    assert rec['metrics']['steps'] == math.ceil(expect / 8)  # one epoch at batch 8
    assert unique > 1900  # the file is mostly distinct rows: near-dedup would have removed most of them


def test_cli_eval_split_only_when_asked(base, tmp_path):
    raw = tmp_path/'rows.jsonl'
    raw.write_text('\n'.join(json.dumps(r) for r in templated_rows(60)))
    from domain_tuner.train import train
    from domain_tuner.methods import TrainConfig
    res = train(base, raw, TrainConfig(max_steps=1, max_length=64, eval_fraction=0.2), out=tmp_path/'a', plot=None)
    acc = res.record['data']['accounting']
    assert 8 <= acc['eval'] <= 16 and acc['train'] + acc['eval'] + sum(acc['dropped'].values()) == 60, acc
    # too long for max_length: a DomainTunerError naming the example and the fix (the main CLI prints it, exit code 2)
    from domain_tuner.train import cli_train
    with pytest.raises(DomainTunerError, match="fix:"):
        cli_train(['--base', str(base), '--data', str(raw), '--out', str(tmp_path/'bad'), '--max-steps', '1', '--max-length', '8'])


def test_cli_benchmark_check_and_kept_duplicates_on_a_raw_file(base, tmp_path):
    "`train --benchmark` runs prepare's contamination check on a raw file; `--keep-duplicates` keeps repeated rows."
    rows = templated_rows(60, seed=3)
    bench = [dict(instruction="What was the segment revenue of the Northstar hardware division in fiscal 2021, before "
                              "the reorganisation of the reporting lines?", output="$12.4 million")]
    raw = tmp_path/'rows.jsonl'
    raw.write_text('\n'.join(json.dumps(r) for r in rows + rows[:5] + bench) + '\n')  # 5 repeats, one leaked item
    (tmp_path/'bench.jsonl').write_text(json.dumps(bench[0]) + '\n')
    def run(*extra):
        r = subprocess.run([sys.executable, '-m', 'domain_tuner.cli', 'train', '--base', str(base), '--data', str(raw),
                            '--out', str(tmp_path/'out'), '--max-steps', '1', '--max-length', '64', '--plot', 'none',
                            *extra], capture_output=True, text=True, env=dict(os.environ, DOMAIN_TUNER_QUIET='1'))
        assert r.returncode == 0, r.stderr[-2000:]
        return r, json.loads((tmp_path/'out'/'run_record.json').read_text())['data']['accounting']
    r, acc = run('--benchmark', str(tmp_path/'bench.jsonl'))
    assert f"rows.jsonl:{len(rows) + 6} overlaps" in r.stderr and 'removed' in r.stderr, r.stderr
    assert acc['read'] == 66 and acc['train'] == 60, acc
    assert any(k.startswith('contaminated') for k in acc['dropped']) and acc['dropped'].get('exact duplicate') == 5, acc
    r, acc = run('--benchmark', str(tmp_path/'bench.jsonl'), '--keep-duplicates')
    assert acc['read'] == 66 and acc['train'] == 65, acc                     # the repeats stay; the leak does not


def test_logs_written_to_a_file_have_no_carriage_returns(base, tmp_path):
    "prepare and train with their output in a file, progress shown (not quiet): lines only, no carriage returns."
    raw = tmp_path/'rows.jsonl'
    raw.write_text('\n'.join(json.dumps(r) for r in templated_rows(40, seed=5)) + '\n')
    env = {k: v for k, v in os.environ.items() if k != 'DOMAIN_TUNER_QUIET'}
    with open(tmp_path/'log.txt', 'w') as log:
        for cmd in (['prepare', str(raw), '--out', str(tmp_path/'prep'), '--tokenizer', str(base)],
                    ['train', '--base', str(base), '--data', str(tmp_path/'prep'), '--out', str(tmp_path/'out'),
                     '--max-steps', '3', '--logging-steps', '1', '--max-length', '64']):
            r = subprocess.run([sys.executable, '-m', 'domain_tuner.cli', *cmd], stdout=log, stderr=subprocess.STDOUT,
                               env=env)
            assert r.returncode == 0, (tmp_path/'log.txt').read_text()[-2000:]
    raw_log = (tmp_path/'log.txt').read_bytes()  # bytes: text mode would turn a carriage return into a new line
    assert b'\r' not in raw_log, [l for l in raw_log.split(b'\n') if b'\r' in l][:3]
    text = raw_log.decode()
    assert sum('loss' in l for l in text.splitlines()) >= 3, text[-2000:]  # one line per logging step
