"""Shared pieces of the benchmark suite: the machine, a deterministic instruction set with long-tailed lengths,
tiny Llama models built in-process, and alternated, repeated timing."""
from __future__ import annotations
import math, os, platform, random, statistics, sys, time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

def load_average()->float: return os.getloadavg()[0]

def machine()->dict:
    "Cores, CPU model, memory and library versions: what a reader needs to compare figures."
    import torch, transformers, peft
    try: import trl; trl_v = trl.__version__
    except ImportError: trl_v = 'not installed'
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), platform.processor()) if Path('/proc/cpuinfo').exists() else platform.processor()
    mem = next((int(l.split()[1]) / 1e6 for l in Path('/proc/meminfo').read_text().splitlines() if l.startswith('MemTotal')), 0.0) if Path('/proc/meminfo').exists() else 0.0
    return dict(cores=os.cpu_count(), cpu=cpu, memory_gb=round(mem, 1), torch_threads=torch.get_num_threads(),
                python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
                peft=peft.__version__, trl=trl_v, cuda=torch.cuda.is_available())

# -- data: a deterministic instruction set with log-normal lengths -------------------------------------------------
_STEMS = ("rev", "cash", "debt", "asset", "equity", "lease", "tax", "note", "ratio", "margin", "cost", "fund", "loan",
          "rate", "yield", "bond", "share", "audit", "risk", "hedge")
_ENDS = ("", "s", "ed", "ing", "al", "ity", "ment", "er", "ive", "ure")
WORDS = [a + b for a in _STEMS for b in _ENDS] + "the of a to in and is for on with as by".split()

def instructions(n:int, seed:int=0, prompt_words:float=14, answer_words:float=40, sigma:float=1.0, max_words:int=300)->list[dict]:
    "Conversations whose prompt and answer word counts are log-normal (median `prompt_words`/`answer_words`)."
    rng = random.Random(seed)
    out = []
    for i in range(n):
        q = max(3, int(rng.lognormvariate(math.log(prompt_words), 0.6)))
        a = max(2, int(rng.lognormvariate(math.log(answer_words), sigma)))
        q, a = min(q, max_words // 3), min(a, max_words - min(q, max_words // 3))
        msgs = [{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(q)) + "?"},
                {"role": "assistant", "content": " ".join(rng.choice(WORDS) for _ in range(a)) + "."}]
        if rng.random() < 0.2: msgs = [{"role": "system", "content": "You are a careful financial analyst."}] + msgs
        out.append({"messages": msgs, "meta": {"source": f"bench:{i + 1}"}})
    return out

def tokenizer_texts()->list[str]:
    "Text the benchmark tokenizer is trained on (a different seed from the training set)."
    return [m['content'] for r in instructions(600, seed=99) for m in r['messages']]

def model_dir(name:str, **shape)->Path:
    "A tiny Llama built in-process from a config (random weights, no download), cached under the system temp dir."
    from domain_tuner.tiny import tiny_model_dir
    return tiny_model_dir(f'bench-{name}', texts=tokenizer_texts(), vocab_size=1024, **shape)

def encoded(records, tok, max_length=512):
    "Encoded examples (input_ids, labels: -100 outside responses) as a `datasets.Dataset`, with the data module."
    from domain_tuner.train import encode_records
    from domain_tuner.methods import TrainConfig
    return encode_records(records, tok, TrainConfig(max_length=max_length, truncation='truncate'), pack=False)

# -- child processes ------------------------------------------------------------------------------------------------
def proc_bytes(field:str)->int:
    "A /proc/self/status memory figure in bytes: VmRSS (resident now) or VmHWM (the peak)."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'): return int(line.split()[1]) * 1024
    return 0

def run_child(module:str, *args)->dict:
    "Run `python -m MODULE ARGS...` in a fresh process (quiet); its last JSON line, or RuntimeError with its stderr."
    import json, subprocess
    p = subprocess.run([sys.executable, '-m', module, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, 'DOMAIN_TUNER_QUIET': '1'})
    line = [l for l in p.stdout.splitlines() if l.startswith('{')]
    if p.returncode or not line: raise RuntimeError(f"{module} {' '.join(map(str, args))} failed: {p.stderr[-3000:]}")
    return json.loads(line[-1])

# -- timing -----------------------------------------------------------------------------------------------------------
def alternate(sides:dict, repeats:int)->dict:
    "Run each side `repeats` times, alternating the order (A B, B A, ...); returns {side: [results]}."
    out = {k: [] for k in sides}
    names = list(sides)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]): out[k].append(sides[k]())
    return out

def median(xs): return statistics.median(xs)

@dataclass
class Result:
    "One benchmark: its figures, targets and a markdown section."
    key:str; title:str
    figures:dict = field(default_factory=dict)   # name -> value (the ratios and what they are made of)
    targets:list = field(default_factory=list)   # (description, measured, passed:bool)
    notes:list = field(default_factory=list)     # markdown lines
    load:tuple = (0.0, 0.0)                      # load average at start and end
    seconds:float = 0.0
    @property
    def passed(self)->bool: return all(t[2] for t in self.targets)

class timed_section:
    "Context manager filling `Result.load` and `Result.seconds`."
    def __init__(self, res:Result): self.res = res
    def __enter__(self): self.t, self.l = time.perf_counter(), load_average(); return self.res
    def __exit__(self, *exc): self.res.load, self.res.seconds = (self.l, load_average()), time.perf_counter() - self.t
