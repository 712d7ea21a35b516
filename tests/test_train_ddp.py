"""Scale-out with no code change: `torchrun --nproc_per_node 2 -m domain_tuner.cli train` (DDP over gloo on CPU) with
batch 4 per process matches a single-process run with batch 8: the same losses at every step and the same adapter."""
import os, sys, json, random, shutil, subprocess
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from domain_tuner.tiny import tiny_model_dir

torch.set_num_threads(1)


def _data(d:Path):
    rng = random.Random(0)
    recs = []
    for i in range(32):  # answers of different lengths: the loss must be averaged over tokens across processes
        a, b = rng.randint(1, 9), rng.randint(10, 99999)
        recs.append(dict(messages=[dict(role='user', content=f"What is {a} plus {b}?"),
                                   dict(role='assistant', content=f"{a} plus {b} is {a+b}. " * (1 + i % 3))],
                         meta=dict(source=f"sums:{i+1}")))
    d.mkdir(parents=True)
    (d/'train.jsonl').write_text('\n'.join(json.dumps(r) for r in recs))
    return d


def _run(cmd, tmp_path):
    env = dict(os.environ, DOMAIN_TUNER_QUIET='1', OMP_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false')
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _losses(out): return [l['loss'] for l in json.loads((out/'run_record.json').read_text())['history'] if 'loss' in l]


@pytest.mark.skipif(shutil.which('torchrun', path=os.path.dirname(sys.executable)) is None, reason="torchrun not installed")
def test_two_process_ddp_matches_single_process(tmp_path):
    data, base = _data(tmp_path/'data'), tiny_model_dir()
    common = ['train', '--base', str(base), '--data', str(data), '--method', 'lora', '--max-steps', '3', '--max-length', '128',
              '--logging-steps', '1', '--lr', '0.005', '--dropout', '0', '--plot', 'none']
    torchrun = os.path.join(os.path.dirname(sys.executable), 'torchrun')
    _run([torchrun, '--standalone', '--nproc_per_node', '2', '-m', 'domain_tuner.cli', *common,
          '--batch-size', '4', '--out', str(tmp_path/'two')], tmp_path)
    os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
    from domain_tuner.train import cli_train  # the single-process run in this process: one interpreter start less
    assert cli_train(common[1:] + ['--batch-size', '8', '--out', str(tmp_path/'one')]) == 0
    one, two = _losses(tmp_path/'one'), _losses(tmp_path/'two')
    assert len(one) == len(two) == 3
    for a, b in zip(one, two): assert abs(a - b) < 1e-5, (one, two)
    a, b = load_file(tmp_path/'one'/'adapter_model.safetensors'), load_file(tmp_path/'two'/'adapter_model.safetensors')
    assert a.keys() == b.keys()
    for k in a: torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)
    rec = json.loads((tmp_path/'two'/'run_record.json').read_text())
    assert rec['metrics']['steps'] == 3
