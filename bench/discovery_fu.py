"""Stage 3 of the known-subclass benchmark: train f_u on each method's kept set, 3 seeds, and score it on the test rows.

    python bench/discovery_fu.py                  # every composition, method and seed (cached per run)

Methods: `random` (random undersampling of the majority class to n), `oracle` (n / #subclasses from every true
subclass, at random), and the subclass selections of bench/discovery_select.py (the paper's chain and ours). f_u is
trained from the stand-in with the paper's recipe, as f0 was. Each run's scores go to
`bench/out/discovery/<comp>/fu-<method>-seed<s>.json`.
"""
import os, sys, json, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *

def fu_path(comp, method, seed): return OUT/comp/f'fu-{method}-seed{seed}.json'

def cached_run(comp:str, method:str, seed:int, train, threads:int=int(os.environ.get("BENCH_THREADS", 1))) -> dict:
    "Test scores of the f_u that `train()` returns as (learner, facts to record), trained once per composition, method and seed (cached)"
    fn = fu_path(comp, method, seed)
    if fn.exists(): return json.loads(fn.read_text())
    torch.set_num_threads(threads)
    t = time.time()
    learn, facts = train()
    scores = test_scores(learn, composition_items(comp))
    scores.update(worst_subclass_recall=worst_subclass_recall(scores, comp), **facts, train_s=round(time.time() - t))
    fn.parent.mkdir(parents=True, exist_ok=True)
    tmp = fn.with_suffix('.tmp'); tmp.write_text(json.dumps(scores, indent=1)); tmp.replace(fn)
    print(f"{comp} {method} seed {seed}: {scores}", flush=True)
    return scores

def train_fu(comp:str, method:str, seed:int, kept:np.ndarray, setting:str="standin", threads:int=int(os.environ.get("BENCH_THREADS", 1)),
             **train_kw) -> dict:
    "Scores of f_u trained on the minority classes plus the majority items at positions `kept` (cached); `train_kw` go to `train_model`"
    def train():
        items = composition_items(comp)
        maj = np.flatnonzero((items.label == MAJORITY) & ~items.is_valid)
        drop = np.setdiff1d(maj, maj[np.asarray(kept)])
        return train_model(items.drop(index=drop), setting, comp, seed, **train_kw), dict(kept=int(len(kept)))
    return cached_run(comp, method, seed, train, threads)
