"""(10) Merge memory on a ~100M-parameter Llama stored in bf16 (as hub checkpoints are): the peak host memory of
`domain_tuner.merge.merge` above the interpreter's imports, against the size of the merged 16-bit model, each merge in
its own child process; fp32 beside it, as merging used to run.

Child mode: python -m bench.merge DTYPE BASE_DIR ADAPTER_DIR OUT  -> one JSON line."""
from __future__ import annotations
import json, sys, tempfile
from pathlib import Path
from .common import Result, timed_section, model_dir, proc_bytes, run_child
from .memory import SHAPE_100M

def child(dtype:str, base:str, adapter:str, out:str):
    import torch, transformers, peft  # noqa: the imports every merge needs, before the baseline
    from domain_tuner.merge import merge
    baseline = proc_bytes('VmRSS')
    check = merge(adapter, out, base=base, dtype=dtype)
    size = sum(f.stat().st_size for f in Path(out).glob('*.safetensors'))
    print(json.dumps(dict(dtype=dtype, baseline=baseline, peak=proc_bytes('VmHWM'), merged_bytes=size, check=check)))

def _bf16_base_and_adapter(tmp:Path)->tuple[Path, Path]:
    "The 100M model saved in bf16, and a LoRA adapter (r=16, all linear layers) with non-zero weights."
    import torch
    from domain_tuner.models import load_model, load_tokenizer
    from domain_tuner.methods import TrainConfig, prepare_model
    src = model_dir('100m', **SHAPE_100M)
    m, tok = load_model(src), load_tokenizer(src)
    base = tmp/'base-bf16'; m.to(torch.bfloat16).save_pretrained(base); tok.save_pretrained(base)
    pm = prepare_model(load_model(base), TrainConfig(method='lora', r=16))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.02)  # a trained adapter: B is not zero
    pm.save_pretrained(tmp/'adapter'); tok.save_pretrained(tmp/'adapter')
    return base, tmp/'adapter'

def merge_memory()->Result:
    res = Result('merge', '10. Merge memory on a ~100M-parameter Llama (child process RSS)')
    with timed_section(res), tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        base, adapter = _bf16_base_and_adapter(tmp)
        out = {d: run_child('bench.merge', d, base, adapter, tmp/f"merged-{d}") for d in ('bfloat16', 'float32')}
        G = 1e9
        size16 = out['bfloat16']['merged_bytes']
        above = {d: (r['peak'] - r['baseline']) for d, r in out.items()}
        ratio = {d: above[d] / size16 for d in out}
        res.figures.update(merged_bf16_gb=size16 / G, above_baseline_gb={d: v / G for d, v in above.items()},
                           over_merged_bf16=ratio, check={d: r['check'] for d, r in out.items()})
        res.targets += [("bf16 merge: peak above the imports <= 1.3x the merged bf16 model", f"{ratio['bfloat16']:.2f}x",
                         ratio['bfloat16'] <= 1.3),
                        ("merged logits within the check's tolerance of the adapter's (bf16)",
                         f"{out['bfloat16']['check']['max_diff']:.2e} (allowed {out['bfloat16']['check']['atol']:g} of "
                         f"{out['bfloat16']['check']['logit_scale']:.3g})", True)]
        res.notes += [f"A Llama {SHAPE_100M} (vocab 1024) saved in bf16, {size16 / G:.3f} GB merged; a LoRA adapter "
                      "(r=16, every linear layer, non-zero B). Each merge runs `domain_tuner.merge.merge` in a fresh child "
                      "process: baseline = RSS after importing torch, transformers and peft; peak = VmHWM at the end "
                      "(the load, the merge in place, the parity check, the save).",
                      "| merge dtype | peak above the imports GB | / merged bf16 size | merged file GB |", "|---|---|---|---|",
                      *[f"| {d} | {above[d] / G:.3f} | {ratio[d]:.2f}x | {out[d]['merged_bytes'] / G:.3f} |" for d in out]]
    return res

if __name__ == '__main__': child(*sys.argv[1:5])
