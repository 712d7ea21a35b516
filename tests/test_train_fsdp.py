"""Sharded training (issue 26): `torchrun --nproc_per_node 2 -m domain_tuner.cli train ... --distributed fsdp` (FSDP2
over gloo on CPU processes) with batch 4 per process reaches the loss of a single process with batch 8 (within 1e-3,
relative), for full fine-tuning, LoRA and QLoRA (its 4-bit weights sharded too), and saves an ordinary folder that plain transformers or peft load, with
logits within 1e-3 of the single-process model's."""
import os, sys, json, shutil
from pathlib import Path
import pytest, torch
from domain_tuner.tiny import tiny_model_dir
from test_train_ddp import _data, _run, _losses

torch.set_num_threads(1)
TORCHRUN = os.path.join(os.path.dirname(sys.executable), 'torchrun')
need = pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun not installed")

def _logits(folder:Path, base:Path):
    from transformers import AutoModelForCausalLM
    if (folder/'adapter_config.json').exists():
        from peft import PeftModel
        m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), folder)
    else: m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad(): return m.eval()(input_ids=ids).logits

@need
@pytest.mark.parametrize('method', ['full', 'lora', 'qlora'])
def test_two_process_fsdp_matches_single_process(tmp_path, method):
    data, base = _data(tmp_path/'data'), tiny_model_dir()
    if method == 'qlora': pytest.importorskip('bitsandbytes')
    common = ['train', '--base', str(base), '--data', str(data), '--method', method, '--max-steps', '6',
              '--max-length', '128', '--logging-steps', '1', '--lr', '0.0005' if method == 'full' else '0.005',
              '--dropout', '0', '--plot', 'none', '--optim', 'adamw_torch', '--precision', 'fp32']
    r = _run([TORCHRUN, '--standalone', '--nproc_per_node', '2', '-m', 'domain_tuner.cli', *common,
              '--batch-size', '4', '--distributed', 'fsdp', '--out', str(tmp_path/'two')], tmp_path)
    # two processes, one report: the data accounting and the closing line come from rank 0 only
    assert (r.stdout.count('data: read 32'), r.stdout.count('saved ')) == (1, 1), r.stdout
    os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
    from domain_tuner.train import cli_train
    assert cli_train(common[1:] + ['--batch-size', '8', '--out', str(tmp_path/'one')]) == 0
    one, two = _losses(tmp_path/'one'), _losses(tmp_path/'two')
    assert len(one) == len(two) == 6 and one[-1] < one[0]
    for a, b in zip(one, two): assert abs(a - b) <= 1e-3 * abs(a), (one, two)
    la, lb = _logits(tmp_path/'one', base), _logits(tmp_path/'two', base)
    assert float((la - lb).abs().max()) <= 1e-3 * float(la.abs().max()), float((la - lb).abs().max())
    rec = json.loads((tmp_path/'two'/'run_record.json').read_text())
    assert rec['config']['distributed'] == 'fsdp'
    m = rec['metrics']  # sharded for real (not DDP under another name), and the tokens of both processes counted
    assert (m['processes'], m['strategy']) == (2, 'fsdp')
    one_rec = json.loads((tmp_path/'one'/'run_record.json').read_text())
    assert m['tokens'] == one_rec['metrics']['tokens']
    assert rec['parameters'] == one_rec['parameters']  # counted whole, 4-bit shards included

def test_fsdp_in_one_process_says_how_to_launch():
    from domain_tuner.methods import TrainConfig
    from domain_tuner.train import strategy_arguments
    from domain_tuner.core import DomainTunerError, select_precision
    with pytest.raises(DomainTunerError) as e:
        strategy_arguments(TrainConfig(distributed='fsdp'), select_precision('fp32', device='cpu'))
    assert 'torchrun --nproc_per_node 2' in str(e.value) and 'this run is one process' in str(e.value)
    with pytest.raises(DomainTunerError, match="unknown distributed strategy 'tp'"): TrainConfig(distributed='tp')
    os.environ['WORLD_SIZE'] = '2'
    try:  # QLoRA shards like the other methods
        assert strategy_arguments(TrainConfig(method='qlora', distributed='fsdp'),
                                  select_precision('fp32', device='cpu'))['fsdp'] is True
    finally: del os.environ['WORLD_SIZE']

@need
def test_resume_from_a_sharded_checkpoint_continues_the_run(tmp_path):
    # The checkpoint at step 3 of a 2-process FSDP run holds each process's shard (model and optimizer); a run resumed
    # from it reaches the uninterrupted run's losses at steps 4-6.
    data, base = _data(tmp_path/'data'), tiny_model_dir()
    common = ['-m', 'domain_tuner.cli', 'train', '--base', str(base), '--data', str(data), '--method', 'full',
              '--max-steps', '6', '--save-steps', '3', '--max-length', '128', '--logging-steps', '1', '--lr', '0.0005',
              '--plot', 'none', '--optim', 'adamw_torch', '--precision', 'fp32', '--batch-size', '4',
              '--distributed', 'fsdp']
    _run([TORCHRUN, '--standalone', '--nproc_per_node', '2', *common, '--out', str(tmp_path/'whole')], tmp_path)
    ck = tmp_path/'whole'/'checkpoints'/'checkpoint-3'
    assert any(p.name.endswith('.distcp') for p in ck.rglob('*')), sorted(p.name for p in ck.rglob('*'))  # sharded
    (tmp_path/'resumed'/'checkpoints').mkdir(parents=True)
    shutil.copytree(ck, tmp_path/'resumed'/'checkpoints'/'checkpoint-3')
    _run([TORCHRUN, '--standalone', '--nproc_per_node', '2', *common, '--out', str(tmp_path/'resumed'), '--resume'],
         tmp_path)
    hist = lambda d: {l['step']: l['loss'] for l in json.loads((d/'run_record.json').read_text())['history'] if 'loss' in l}
    a, b = hist(tmp_path/'whole'), hist(tmp_path/'resumed')
    assert min(b) == 4, b
    for step in (4, 5, 6): assert abs(a[step] - b[step]) <= 1e-4 * abs(a[step]), (step, a, b)
