"""`domain-tuner train` end to end: a raw data file is prepared on the fly, trained, and reported; bad input is an error
that says what to change."""
import os, json
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest, torch
from domain_tuner.core import DomainTunerError
from domain_tuner.models import tiny_model_dir
from test_train import sums

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def base(): return tiny_model_dir()


def test_cli_prepares_raw_file_on_the_fly(base, tmp_path):
    import subprocess, sys
    raw = tmp_path/'raw.jsonl'  # a plain chat-format file, not a prepared folder
    raw.write_text('\n'.join(json.dumps(dict(messages=r['messages'])) for r in sums(40)))
    r = subprocess.run([sys.executable, '-m', 'domain_tuner.cli', 'train', '--base', str(base), '--data', str(raw),
                        '--method', 'lora', '--out', str(tmp_path/'out'), '--max-steps', '2', '--batch-size', '4',
                        '--max-length', '64', '--plot', 'none'], capture_output=True, text=True,
                       env=dict(os.environ, DOMAIN_TUNER_QUIET='1', OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'saved' in r.stdout and 'tokens/s' in r.stdout
    rec = json.loads((tmp_path/'out'/'run_record.json').read_text())
    d, c = rec['data'], rec['data']['prepared']  # the preparation's counts are recorded: nothing vanishes unreported
    assert c['read'] == 40 and d['n_train'] + d['n_eval'] + c['duplicates'] + c['rejected'] == 40, d
    assert d['n_eval'] > 0                        # the on-the-fly preparation made an eval split
    # too long for max_length: a DomainTunerError naming the example and the fix (the main CLI prints it, exit code 2)
    from domain_tuner.train import cli_train
    with pytest.raises(DomainTunerError, match="fix:"):
        cli_train(['--base', str(base), '--data', str(raw), '--out', str(tmp_path/'bad'), '--max-steps', '1', '--max-length', '8'])
