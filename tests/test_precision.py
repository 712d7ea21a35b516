"""Precision chosen by measurement on a CPU: bf16 (frozen LoRA base in bf16, adapters and optimizer state in fp32)
trains to the same losses as fp32 within a stated tolerance, on any CPU (slow where bf16 is slow, but a tiny model);
the run record says what was chosen and why."""
import os, random
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest, torch
from domain_tuner.tiny import tiny_model_dir
from domain_tuner.methods import TrainConfig
from domain_tuner.train import train

TOL = 0.03  # bf16 keeps 8 bits of mantissa: losses agree within 3% relative over these steps


def _rows(n, seed=0):
    rng = random.Random(seed)
    return [dict(messages=[dict(role='user', content=f"What was revenue in {rng.randint(2001, 2024)}?"),
                           dict(role='assistant', content=f"${rng.randint(1, 999)}.{rng.randint(0, 9)} million")]) for _ in range(n)]


def test_lora_bf16_trains_like_fp32(tmp_path):
    runs = {}
    for p in ('fp32', 'bf16'):
        cfg = TrainConfig(method='lora', precision=p, lr=2e-3, max_steps=6, batch_size=8, max_length=64, logging_steps=1)
        runs[p] = train(tiny_model_dir(), _rows(48), cfg, out=tmp_path/p, plot=None)
    l32 = [l['loss'] for l in runs['fp32'].history if 'loss' in l]
    l16 = [l['loss'] for l in runs['bf16'].history if 'loss' in l]
    assert len(l32) == len(l16) == 6 and l16[-1] < l16[0]
    assert max(abs(a - b) / a for a, b in zip(l32, l16)) < TOL, (l32, l16)
    m = runs['bf16'].model
    frozen = {p.dtype for n, p in m.named_parameters() if not p.requires_grad and p.ndim == 2}
    trainable = {p.dtype for p in m.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16} and trainable == {torch.float32}
    rec = runs['bf16'].record['precision']
    assert rec['load_dtype'] == 'bfloat16' and rec['autocast'] == 'bfloat16' and 'asked for' in rec['reason']


def test_measured_choice_is_recorded(tmp_path, monkeypatch):
    "With no precision given and no pin, training measures; the record carries the measurement."
    monkeypatch.delenv('DOMAIN_TUNER_CPU_PRECISION', raising=False)
    monkeypatch.delenv('DOMAIN_TUNER_PRECISION', raising=False)
    res = train(tiny_model_dir(), _rows(16), TrainConfig(method='lora', max_steps=1, batch_size=8, max_length=64), out=tmp_path/'m', plot=None)
    reason = res.record['precision']['reason']
    assert 'measured' in reason and 'GFLOPS' in reason, reason
