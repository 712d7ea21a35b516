"""Checkpoints and exact resume: a run interrupted after its checkpoint and resumed gives the same losses at the next
steps and the same final weights as an uninterrupted run."""
import os
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest, torch
from transformers import TrainerCallback
from domain_tuner.tiny import tiny_model_dir
from domain_tuner.methods import TrainConfig
from domain_tuner.train import train
from test_train import sums

torch.set_num_threads(1)


class Crash(Exception): pass


class CrashAt(TrainerCallback):
    "Stands in for a killed process: raises when step `step + 1` begins (the checkpoint at `step` is already saved)."
    def __init__(self, step): self.step = step
    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == self.step: raise Crash(f"interrupted after step {state.global_step}")


def _losses(history): return {l['step']: l['loss'] for l in history if 'loss' in l}


@pytest.mark.parametrize('method', ['lora', 'qlora', 'full'])
def test_resume_is_exact(method, tmp_path):
    base, recs = tiny_model_dir(), sums(40)
    # dropout on, so the resumed run must also restore the RNG state to match; 40 examples / batch 8 = 5 steps an epoch,
    # so the interruption at step 4 is mid-epoch and the resumed run must skip the batches it has seen
    cfg = TrainConfig(method=method, r=4, lr=2e-3, dropout=0.1, max_steps=8, batch_size=8, max_length=64,
                      logging_steps=1, save_steps=4, warmup_ratio=0.25)
    full = train(base, recs, cfg, out=tmp_path/'uninterrupted', plot=None)
    with pytest.raises(Crash):
        train(base, recs, cfg, out=tmp_path/'interrupted', plot=None, callbacks=[CrashAt(4)])
    assert (tmp_path/'interrupted'/'checkpoints'/'checkpoint-4').is_dir()
    resumed = train(base, recs, cfg, out=tmp_path/'interrupted', resume=True, plot=None)
    a, b = _losses(full.history), _losses(resumed.history)
    assert min(b) == 5, b  # the resumed run starts at the step after the checkpoint
    for step in range(5, 9): assert abs(a[step] - b[step]) < 1e-5, (step, a[step], b[step])
    pa, pb = dict(full.model.named_parameters()), dict(resumed.model.named_parameters())
    for n, p in pa.items():
        if p.requires_grad: torch.testing.assert_close(pb[n], p, atol=1e-6, rtol=0)
    assert resumed.metrics['steps'] == 8


def test_resume_without_checkpoint_says_so(tmp_path):
    from domain_tuner.core import DomainTunerError
    with pytest.raises(DomainTunerError, match="no checkpoint to resume from"):
        train(tiny_model_dir(), sums(8), TrainConfig(max_steps=1, max_length=64), out=tmp_path/'x', resume=True, plot=None)
