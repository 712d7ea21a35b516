"The dashboard, driven headless: widgets from TrainConfig fields, settings reach the config, the memory plan follows, and the steps run."
import json
from dataclasses import fields
import pytest, torch
torch.set_num_threads(1)  # tiny models train faster on one thread, especially on a shared CPU
from domain_tuner.methods import TrainConfig, METHODS
from domain_tuner.dashboard import (DashboardState, Dashboard, KEY_SETTINGS, setting_info, setting_widget, widget_value,
                                    WidgetLossPlot, dashboard)

QUICK = dict(builtin_examples=1000, train_limit=48, eval_limit=8, bench_limit=6, max_new_tokens=8)

@pytest.fixture
def state(tmp_path, tiny_dir):
    return DashboardState(out=str(tmp_path/'dash'), **QUICK).set(max_steps=4, batch_size=4, lr=3e-3, logging_steps=1)

def test_every_trainconfig_field_gets_a_widget_with_its_docment():
    "Not a hand-written list: every TrainConfig field can be shown, typed by its annotation, described by its docment."
    for f in fields(TrainConfig):
        info = setting_info(TrainConfig, f.name)
        w = setting_widget(info)
        assert w.description == f.name and w.tooltip == info.doc and info.doc
        assert widget_value(info, w) == getattr(TrainConfig(), f.name) or (f.name == 'target_modules')
    assert set(setting_widget(setting_info(TrainConfig, 'method')).options) == {(m, m) for m in METHODS}

def test_dashboard_has_a_widget_per_chosen_setting_and_changes_reach_the_config(state):
    d = Dashboard(state)
    assert set(d.widgets) == set(KEY_SETTINGS)
    changes = dict(method='qlora', max_steps=7, batch_size=2, max_length=256, r=8, alpha=16.0, dropout=0.1,
                   grad_accum=2, epochs=2.0, gradient_checkpointing=True, pack=True, loss_on='all')
    for k, v in changes.items():
        d.widgets[k].value = v
        assert getattr(d.state.config, k) == v, k
    d.widgets['lr'].value = '1e-4'
    assert d.state.config.lr == 1e-4
    d.widgets['lr'].value = ''          # empty text: back to auto (the default for the model's size and method)
    assert d.state.config.lr is None and d.state.config.learning_rate == 2e-4
    d.inputs['base'].value = 'builtin:tiny'
    d.inputs['data'].value = 'builtin:medical/train'
    assert d.state.data == 'builtin:medical/train'

def test_memory_plan_text_follows_the_settings(state):
    d = Dashboard(state)
    t0 = d.memory.value
    d.widgets['r'].value = 64
    t1 = d.memory.value
    assert t1 != t0 and f"{state.plan().trainable/1e6:.3f}M trainable" in t1
    d.widgets['method'].value = 'full'
    assert 'full:' in d.memory.value and d.state.plan().trainable == d.state.plan().params
    d.widgets['batch_size'].value = 16
    assert '16 examples' in d.memory.value
    # a bad value leaves the config and the plan as they were, and says why
    before = d.memory.value
    d.widgets['method'].value = 'lora'; d.widgets['r'].value = 0
    assert 'LoRA rank must be at least 1' in d.status.value and d.state.config.r == 64

def test_unreachable_base_gives_a_plan_message_not_an_exception(tmp_path):
    s = DashboardState(base=str(tmp_path/'missing-model'), out=str(tmp_path))
    assert s.plan_text().startswith('no memory plan')
    assert 'no memory plan' in Dashboard(s).memory.value

def test_headless_plan_train_evaluate(state):
    plan = state.plan()
    assert plan.method == 'lora' and plan.total > 0
    res = state.train(plot=None)
    assert res.metrics['steps'] == 4 and res.metrics['eval_loss'] < res.metrics['eval_loss_before']
    rec = json.loads((res.out/'run_record.json').read_text())
    assert rec['config']['max_steps'] == 4 and rec['config']['lr'] == 3e-3 and rec['data']['n_train'] == 48
    comp = state.evaluate()
    assert [r['model'] for r in comp.table()] == ['base', 'lora']
    assert len(comp.results[0].examples) == 6 and 'exact_match' in comp.results[1].metrics
    # the base's score is reused until the base or benchmark changes
    base = state.evals['base']
    assert state.evaluate().results[0] is base
    state.set(bench_limit=3)
    assert len(state.evaluate().results[0].examples) == 3

def test_changing_data_forgets_the_trained_model(state):
    state.train(plot=None)
    assert state.result is not None
    state.set(data='builtin:finance/documents')
    assert state.prepared is None and state.result is None

def test_train_button_draws_live_plot_and_shows_results(state):
    d = dashboard(out=state.out, **QUICK, max_steps=4, batch_size=4, lr=3e-3, logging_steps=1)
    d.train_button.click()
    assert isinstance(d.live, WidgetLossPlot) and d.live.draws >= 1
    assert sum('loss' in l for l in d.live.hist.logs) >= 4   # one log per step reached the plot
    assert 'exact_match' in d.results.value and '<td' in d.results.value and 'lora' in d.results.value
    assert not d.train_button.disabled

def test_button_errors_are_shown_not_raised(tmp_path):
    d = Dashboard(DashboardState(out=str(tmp_path), data='builtin:nope/train'))
    d.train_button.click()
    assert 'training failed' in d.status.value and 'unknown built-in data' in d.status.value
