"""(12) The planner on real shapes: QLoRA, LoRA and full fine-tuning of Llama-3-8B, Qwen2.5-7B and Qwen2.5-0.5B
against the memory of common GPUs, as the finance tutorial's experiment 3 plans them (batch 4 x 1,024 tokens, gradient
checkpointing, a 16-bit base: bf16, fp16 on a T4, the same bytes). Only the models' published configs are used
(`domain_tuner.memory.SHAPES`); nothing is loaded or downloaded. A plan, not a measurement: section 11 measures the
planner against real runs on this CPU; on a GPU, `bench/gpu_check.py` does."""
from __future__ import annotations
from .common import Result, timed_section

METHODS = ('qlora', 'lora', 'full')
GPUS_SHOWN = ('T4', 'L4', 'A100-40GB', 'A100-80GB')

def plans()->dict:
    "{(model, method): MemoryPlan} for the tutorial's shapes and run."
    from domain_tuner.memory import SHAPES, estimate_memory
    from domain_tuner.methods import TrainConfig
    return {(m, meth): estimate_memory(m, TrainConfig(method=meth, batch_size=4, max_length=1024,
                                                      gradient_checkpointing=True), dtype='bfloat16', device='cuda')
            for m in SHAPES for meth in METHODS}

def gpu_plans()->Result:
    res = Result('planner', '12. Planned GPU memory for real model shapes (no GPU needed)')
    with timed_section(res):
        p = plans()
        res.figures.update(planned_gb={f"{m} {meth}": v.total for (m, meth), v in p.items()},
                           fits={f"{m} {meth}": [g for g in GPUS_SHOWN if v.fits(g)] for (m, meth), v in p.items()})
        qlora_8b = p[('Llama-3-8B', 'qlora')]
        res.targets.append(("QLoRA on Llama-3-8B fits a T4 (16 GB, 10% headroom)", f"{qlora_8b.total:.1f} GB",
                            qlora_8b.fits('T4')))
        res.notes += ["Batch 4 x 1,024 tokens (every token trained: the plan's worst case), gradient checkpointing, "
                      "LoRA r=16 on every linear layer, AdamW (paged 8-bit for QLoRA, as `optimizer_name` picks on "
                      "CUDA). A GPU fits a plan when the plan is at most 90% of its memory.",
                      "| model | method | weights | optimizer | activations | logits | planned GB | "
                      + ' | '.join(GPUS_SHOWN) + ' |', '|---|---|---|---|---|---|---|' + '---|' * len(GPUS_SHOWN),
                      *[f"| {m} | {meth} | {v.weights:.1f} | {v.optimizer:.2f} | {v.activations:.1f} | {v.logits:.1f} | "
                        f"**{v.total:.1f}** | " + ' | '.join('yes' if v.fits(g) else 'no' for g in GPUS_SHOWN) + ' |'
                        for (m, meth), v in p.items()]]
    return res
