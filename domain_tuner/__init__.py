__version__ = "0.1.0"

# The public API, imported lazily: `import domain_tuner` stays fast and needs neither CUDA nor bitsandbytes.
# Each name maps to the module that defines it; the notebooks in nbs/ document them in reading order.
_API = {
    'domain_tuner.core': ['DomainTunerError', 'select_precision', 'Precision', 'seed_everything', 'environment_info',
                          'probe_cuda', 'probe_bitsandbytes', 'probe_flash_attention'],
    'domain_tuner.tiny': ['tiny_llama', 'tiny_model_dir', 'build_tokenizer'],
    'domain_tuner.resolve': ['resolve_model'],
    'domain_tuner.models': ['load_model', 'load_tokenizer', 'load_trained', 'count_parameters'],
    'domain_tuner.settings': ['read_settings'],
    'domain_tuner.data': ['load_records', 'prepare', 'PrepareConfig', 'encode', 'tokenize_records', 'Collator', 'show_example'],
    'domain_tuner.methods': ['TrainConfig'],
    'domain_tuner.memory': ['estimate_memory'],
    'domain_tuner.train': ['train'],
    'domain_tuner.merge': ['merge'],
    'domain_tuner.export': ['export_gguf'],
    'domain_tuner.staged': ['Stage', 'Curriculum'],
    'domain_tuner.evaluate': ['evaluate', 'EvalResult', 'perplexity', 'generate', 'chat', 'compare', 'ForgettingGuard',
                              'ReviewSession', 'review_widget', 'compare_with_experts', 'write_report', 'EvalConfig'],
    'domain_tuner.plan': ['plan_run'],
    'domain_tuner.run': ['run'],
}
_WHERE = {name: mod for mod, names in _API.items() for name in names}
__all__ = sorted(_WHERE)

def __getattr__(name):
    if name in _WHERE:
        import importlib
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'domain_tuner' has no attribute {name!r}")

def __dir__(): return sorted(list(globals()) + __all__)
