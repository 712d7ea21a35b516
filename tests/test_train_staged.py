"""Staged training: every stage is evaluated (and the base), adapters are continued or merged between stages as the
policy says, replay is mixed in, a finished run resumes without retraining, and the evaluation helper plugs in."""
import os, json
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest, torch
from safetensors.torch import load_file
from domain_tuner.tiny import tiny_model_dir
from domain_tuner.methods import TrainConfig
from domain_tuner.staged import Stage, Curriculum, evaluate_stage
from test_train import sums

torch.set_num_threads(1)


def docs(n):
    return [dict(text=f"Revenue grew {i} percent while costs fell {i % 5} percent.", meta=dict(source=f"docs:{i+1}"))
            for i in range(n)]


def test_three_stages_continue_then_merge(tmp_path):
    calls = []
    def hook(model, tok, stage):
        calls.append(stage.name)
        return evaluate_stage(model, tok, stage)
    cur = Curriculum(tiny_model_dir(), [
            Stage('text', docs(24), eval_data=docs(32)[24:], method='lora', lr=5e-3, max_steps=4, overrides=dict(loss_on='all')),
            Stage('qa', sums(24), eval_data=sums(8, seed=1), method='lora', lr=5e-3, max_steps=4, replay=0.25),
            Stage('tasks', sums(24, seed=2), eval_data=sums(8, seed=3), method='qlora', lr=5e-3, max_steps=4,
                  adapter_policy='merge')],
        config=TrainConfig(batch_size=8, max_length=64, logging_steps=2, r=4),
        replay_data=docs(40), canary=[dict(text="The quick brown fox jumps over the lazy dog.")], evaluate_stage=hook)
    res = cur.run(tmp_path/'run', plot=None)
    names = [s['name'] for s in res.stages]
    assert names == ['base', 'text', 'qa', 'tasks']
    assert calls == ['text', 'text', 'qa', 'tasks']  # the base, then after each stage
    for s in res.stages:
        assert {'eval_loss', 'eval_perplexity', 'canary_perplexity'} <= set(s['eval']), s
    text, qa, tasks = res.stages[1:]
    # 'continue': stage 2 keeps training stage 1's adapter on the same base
    assert qa['continued_adapter'] == text['out'] and qa['base'] == text['base']
    a1 = load_file(os.path.join(text['out'], 'adapter_model.safetensors'))
    a2 = load_file(os.path.join(qa['out'], 'adapter_model.safetensors'))
    assert a1.keys() == a2.keys() and any(not torch.equal(a1[k], a2[k]) for k in a1)
    assert qa['n_replay'] == 8  # 25% of 32
    # 'merge': stage 2's adapter is merged into a full-precision model, stage 3 starts a new QLoRA adapter on it
    assert tasks['base'].endswith('03-tasks/merged') and tasks['continued_adapter'] is None
    merged_rec = json.loads((tmp_path/'run'/'03-tasks'/'merged'/'run_record.json').read_text())
    assert merged_rec['check']['max_diff'] <= 1e-4
    assert json.loads((tmp_path/'run'/'03-tasks'/'run_record.json').read_text())['quantize'] == 'nf4'
    rec = json.loads((tmp_path/'run'/'curriculum_record.json').read_text())
    assert [s['name'] for s in rec['stages']] == names
    # a finished run resumes without training again, and reports the same metrics
    calls.clear()
    again = cur.run(tmp_path/'run', resume=True, plot=None)
    assert [s['eval'] for s in again.stages[1:]] == [s['eval'] for s in res.stages[1:]]
    assert calls == ['text']  # only the base evaluation ran


def test_evaluation_helper_plugs_in(tmp_path):
    from domain_tuner.evaluate import evaluate
    def hook(model, tok, stage):
        r = evaluate(model, tok, stage.eval_records, batch_size=8, max_new_tokens=8)
        return {f"bench_{k}": v for k, v in r.metrics.items()} | evaluate_stage(model, tok, stage)
    cur = Curriculum(tiny_model_dir(), [Stage('qa', sums(16), eval_data=sums(4, seed=1), method='lora', lr=5e-3, max_steps=2)],
                     config=TrainConfig(batch_size=8, max_length=64, r=4), evaluate_stage=hook,
                     max_forgetting=10.0, forgetting_metric='bench_exact_match')
    res = cur.run(tmp_path/'run', plot=None)
    assert all('bench_exact_match' in s['eval'] for s in res.stages)


def _stage_models(tmp_path, monkeypatch, release):
    ("Weak references to the model after each stage of a two-stage bf16 curriculum (accelerate's autocast path), "
     "with Python's automatic cycle collection off, as it is between its rare runs.")
    import gc, weakref, domain_tuner.staged as S
    if not release: monkeypatch.setattr(S, 'release_memory', lambda: None)
    refs = []
    def hook(model, tok, stage):
        refs.append(weakref.ref(model))
        return evaluate_stage(model, tok, stage)
    cur = Curriculum(tiny_model_dir(), [Stage('a', sums(16), eval_data=sums(4, seed=1), max_steps=2),
                                        Stage('b', sums(16, seed=2), eval_data=sums(4, seed=3), max_steps=2)],
                     config=TrainConfig(method='lora', r=4, batch_size=8, max_length=64, precision='bf16'),
                     evaluate_stage=hook)
    gc.disable()
    try: cur.run(tmp_path/'run', plot=None)
    finally: gc.enable()
    return refs


def test_no_trained_model_outlives_its_stage(tmp_path, monkeypatch):
    "Under mixed precision accelerate leaves a reference cycle on the model: the curriculum frees each stage's model."
    refs = _stage_models(tmp_path, monkeypatch, release=True)
    assert len(refs) == 3 and all(r() is None for r in refs), [r() is None for r in refs]  # base, a, b: all freed


def test_without_release_the_cycle_keeps_models(tmp_path, monkeypatch):
    "The check above can fail: without `release_memory` the trained models are still alive after the run."
    refs = _stage_models(tmp_path, monkeypatch, release=False)
    assert any(r() is not None for r in refs[1:])
