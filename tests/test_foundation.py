"Foundation: precision on fake hardware, seeding, the public loader round trip, clear errors, import without optional backends, the CLI."
import json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch
from conftest import run_cli, ROOT
from domain_tuner.core import select_precision, seed_everything, DomainTunerError
from domain_tuner.models import load_model, load_tokenizer, load_trained
from domain_tuner.tiny import tiny_llama

@pytest.mark.parametrize("cap,prefer,expected", [
    ((7, 5), None, ('cuda', 'float16', 'float16', 'float32')),   # T4: emulated bf16 must not be chosen
    ((7, 0), None, ('cuda', 'float16', 'float16', 'float32')),   # V100
    ((8, 0), None, ('cuda', 'bfloat16', 'bfloat16', 'float32')), # A100
    ((8, 9), None, ('cuda', 'bfloat16', 'bfloat16', 'float32')), # L4
    ((9, 0), 'fp16', ('cuda', 'float16', 'float16', 'float32')),
    ((9, 0), 'fp32', ('cuda', 'float32', None, 'float32')),
    (None, None, ('cpu', 'float32', None, 'float32')),           # CPU: never bf16 autocast by default
])
def test_precision_on_fake_hardware(cap, prefer, expected):
    p = select_precision(prefer=prefer, capability=cap)
    assert (p.device, p.load_dtype, p.autocast, p.adapter_dtype) == expected

def test_precision_refuses_bf16_below_ampere():
    with pytest.raises(DomainTunerError, match="compute capability 8.0"):
        select_precision(prefer='bf16', capability=(7, 5))

def _lora_run(model_dir, seed, steps=3):
    "Seed, build a LoRA adapter, take a few SGD steps; return the adapter init and the losses."
    from peft import LoraConfig, get_peft_model
    seed_everything(seed)
    model = get_peft_model(load_model(model_dir), LoraConfig(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'], lora_dropout=0.1))
    init = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    tok = load_tokenizer(model_dir)
    x = torch.tensor([tok("Gross margin is gross profit divided by revenue.")['input_ids']] * 2, device=model.device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train(); losses = []
    for _ in range(steps):
        loss = model(input_ids=x, labels=x).loss
        loss.backward(); opt.step(); opt.zero_grad(); losses.append(loss.item())
    return init, losses

def test_seeding_reproduces_adapter_init_and_losses(tiny_dir):
    init1, l1 = _lora_run(tiny_dir, 7)
    init2, l2 = _lora_run(tiny_dir, 7)
    init3, l3 = _lora_run(tiny_dir, 8)
    assert init1.keys() == init2.keys() and all(torch.equal(init1[k], init2[k]) for k in init1)
    assert l1 == l2
    assert any(not torch.equal(init1[k], init3[k]) for k in init1)  # the seed really decides the init

def test_tiny_model_round_trip_through_public_loader(tmp_path):
    out = tiny_llama(tmp_path/'m', seed=3, hidden_size=32)
    files = {p.name for p in out.iterdir()}
    assert {'config.json', 'model.safetensors', 'tokenizer.json', 'chat_template.jinja', 'generation_config.json'} <= files
    assert not any(f.endswith('.bin') for f in files)
    m, t = load_model(out), load_tokenizer(out)
    x = torch.tensor([t("Debt to equity was 1.84")['input_ids']], device=m.device)
    out2 = tmp_path/'m2'; m.save_pretrained(out2); t.save_pretrained(out2)
    m2, t2 = load_trained(out2)
    assert torch.equal(m(x).logits, m2(x).logits)
    assert t2.chat_template == t.chat_template and t2.pad_token == '<|pad|>' and t2.eos_token == '<|im_end|>'

@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "model folder does not exist"),
    (lambda d: d.mkdir(), "config.json is missing"),
    (lambda d: (d.mkdir(), (d/'config.json').write_text('{"model_type": ')), "config.json is not valid JSON"),
    (lambda d: (d.mkdir(), (d/'config.json').write_text('{"x": 1}')), "config.json has no 'model_type'"),
    (lambda d: (d.mkdir(), (d/'config.json').write_text('{"model_type": "llama"}')), "no model weights"),
])
def test_bad_model_path_errors_name_the_path(tmp_path, setup, message):
    d = tmp_path/'model'; setup(d)
    with pytest.raises(DomainTunerError) as e:
        load_model(d)
    assert message in str(e.value) and str(d) in str(e.value) and 'fix:' in str(e.value)

def test_import_without_bitsandbytes_and_cuda(tiny_dir):
    "A machine without bitsandbytes: import works, the probe says why, QLoRA names the fallback."
    code = textwrap.dedent(f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split('.')[0] == 'bitsandbytes': raise ImportError('blocked for the test')
        sys.meta_path.insert(0, Block())
        import domain_tuner
        from domain_tuner.core import probe_bitsandbytes, probe_cuda
        from domain_tuner.models import load_model
        assert not probe_bitsandbytes().ok, probe_bitsandbytes()
        assert 'bitsandbytes' not in sys.modules
        m = load_model({str(tiny_dir)!r})            # the full-precision path still works
        try: load_model({str(tiny_dir)!r}, quantize='nf4'); print('NO ERROR')
        except domain_tuner.DomainTunerError as e: print(e)
    """)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})
    assert r.returncode == 0, r.stderr
    assert "4-bit loading needs bitsandbytes" in r.stdout and "method='lora'" in r.stdout

def test_import_is_light():
    r = subprocess.run([sys.executable, '-c', "import sys, domain_tuner; print('torch' in sys.modules, 'peft' in sys.modules)"],
                       capture_output=True, text=True)
    assert r.stdout.split() == ['False', 'False'], r.stderr

def test_cli_help_info_and_tiny_model(tmp_path):
    h = run_cli('--help').stdout
    assert 'usage: domain-tuner' in h and 'tiny-model' in h
    info = json.loads(run_cli('info', '--json').stdout)
    assert info['precision']['device'] in ('cpu', 'cuda') and info['torch']
    r = run_cli('tiny-model', tmp_path/'t', '--hidden-size', '32')
    assert (tmp_path/'t'/'model.safetensors').exists() and 'parameters' in r.stdout
    bad = run_cli('frobnicate', check=False)
    assert bad.returncode == 2 and 'unknown command' in bad.stderr

def test_settings_file_and_overrides(tmp_path):
    from domain_tuner.settings import read_settings
    f = tmp_path/'run.ini'
    f.write_text("# nbdev's own settings live in pyproject.toml\n[model]\nbase = Qwen/Qwen2.5-0.5B\n[train]\nlr = 2e-4\n")
    s = read_settings(f, ['train.lr=1e-4'])
    assert s.section('model') == {'base': 'Qwen/Qwen2.5-0.5B'} and s.section('train') == {'lr': '1e-4'}
    assert s['model']['base'].where == f"{f}:3"

def test_default_settings_ini_says_where_nbdev_settings_live():
    head = (ROOT/'settings.ini').read_text().splitlines()[:5]
    assert any('pyproject.toml' in l for l in head)

@pytest.mark.slow
def test_wheel_installs_into_fresh_venv():
    "pip install of the built wheel into a fresh venv with torch present: import, --help, and no CUDA packages on CPU."
    r = subprocess.run(['bash', str(ROOT/'tools'/'wheel_check.sh')], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert 'wheel check passed' in r.stdout

def test_public_api_resolves():
    "Every name listed in domain_tuner.__all__ imports from the module that defines it."
    import domain_tuner
    assert {'prepare', 'train', 'TrainConfig', 'Curriculum', 'evaluate', 'merge', 'load_model', 'run'} <= set(domain_tuner.__all__)
    assert all(getattr(domain_tuner, n) is not None for n in domain_tuner.__all__)

def test_packaged_settings_match_the_default_run():
    "`domain-tuner demo` outside a checkout runs the copy shipped in the package: it must be the top-level settings.ini."
    assert (ROOT/'domain_tuner'/'assets'/'settings.ini').read_text() == (ROOT/'settings.ini').read_text()

def test_default_run_plan_is_valid():
    r = run_cli('run', ROOT/'settings.ini', '--dry-run')
    assert 'qlora' in r.stdout and 'lora:' in r.stdout and 'preference(mined' in r.stdout  # the demo's preference stage
    r = run_cli('run', ROOT/'settings.ini', '--dry-run', '--set', 'run.methods=qlora,lora,full')
    assert 'full: domain_text' in r.stdout  # full fine-tuning is one setting away


def test_dry_run_without_bitsandbytes_says_so(tmp_path):
    "The shipped settings train QLoRA: on a machine without bitsandbytes the plan says so before anything trains."
    root = Path(__file__).resolve().parents[1]
    code = textwrap.dedent(f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split('.')[0] == 'bitsandbytes': raise ImportError('blocked for the test')
        sys.meta_path.insert(0, Block())
        from domain_tuner.cli import main
        main(['run', {str(root/'settings.ini')!r}, '--dry-run', '--set', 'run.out={tmp_path/'out'}'])
    """)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'DOMAIN_TUNER_QUIET': '1'})
    out = r.stdout + r.stderr
    assert "cannot run here: method qlora" in out and "bitsandbytes" in out, out[-2000:]
    assert not (tmp_path/'out'/'qlora').exists()  # nothing trained
