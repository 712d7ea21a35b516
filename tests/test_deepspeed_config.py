"""DeepSpeed ZeRO (issue 26) cannot train on these CPUs, so its configuration is checked by DeepSpeed's own parser:
the JSON `domain-tuner config deepspeed` writes, with transformers' 'auto' values filled as its integration fills
them, and the accelerate file `domain-tuner config accelerate --strategy zero2|zero3` writes."""
import json, subprocess, sys
import pytest
deepspeed = pytest.importorskip('deepspeed', reason="DeepSpeed is not installed (DS_BUILD_OPS=0 pip install deepspeed)")
from domain_tuner.train import deepspeed_config, accelerate_config

def _filled(cfg:dict)->dict:
    "The 'auto' values as transformers' HfTrainerDeepSpeedConfig fills them from the run's settings."
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig
    from transformers import TrainingArguments
    from transformers import AutoModelForCausalLM
    from domain_tuner.tiny import tiny_model_dir
    # its hidden size sizes the buckets; loaded first, or a live ZeRO-3 config would have it loaded under zero.Init
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir())
    hf = HfTrainerDeepSpeedConfig(json.loads(json.dumps(cfg)))
    hf.trainer_config_process(TrainingArguments(output_dir='/tmp/ds', per_device_train_batch_size=4,
                                                gradient_accumulation_steps=2, max_grad_norm=1.0, use_cpu=True))
    hf.trainer_config_finalize(TrainingArguments(output_dir='/tmp/ds', per_device_train_batch_size=4), model, 100)
    return hf.config

@pytest.mark.parametrize('strategy', ['zero2', 'zero3'])
def test_deepspeed_parses_the_config(strategy, monkeypatch):
    from deepspeed.runtime import config as dsc
    def no_group(): raise RuntimeError("no process group")  # one process, as DeepSpeed reads it without a launcher
    monkeypatch.setattr(dsc.dist, 'get_rank', no_group)   # (its own probe would look for MPI, not installed here)
    ds = dsc.DeepSpeedConfig(_filled(deepspeed_config(strategy)))  # parsed and sanity-checked: no GPU needed
    assert ds.zero_optimization_stage == {'zero2': 2, 'zero3': 3}[strategy]
    assert ds.train_micro_batch_size_per_gpu == 4 and ds.gradient_accumulation_steps == 2
    assert ds.train_batch_size == 4 * 2 and ds.gradient_clipping == 1.0
    assert ds.zero_config.overlap_comm and ds.zero_config.reduce_bucket_size > 0

def test_the_command_writes_what_deepspeed_reads(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'domain_tuner.cli', 'config', 'deepspeed', '--strategy', 'zero3'],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == deepspeed_config('zero3')
    assert accelerate_config('zero3')['deepspeed_config']['zero_stage'] == 3
