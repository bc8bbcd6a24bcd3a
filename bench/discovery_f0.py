"""Stage 1 of the known-subclass benchmark: train f0 per composition / setting / seed and cache the majority class's features.

    python bench/discovery_f0.py                 # every composition, setting and seed (cached: reruns are free)
    python bench/discovery_f0.py A standin 0     # one of them

For each run it saves `bench/out/discovery/<comp>/f0-<setting>-seed<s>.npz`: the features of every training image of the
majority class from f0's candidate layers (`f0_body`, `f0_pool`, `f0_linear`) and from the weights f0 started from
(`start_body`, `start_pool`: the stand-in before fine-tuning, or the random initialisation from scratch), the true
subclass of each image, and f0's test scores. Two trainings side by side run 5-10x slower here: run one at a time.
"""
import json, os, sys, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *

SEEDS = (0, 1, 2)
SETTINGS = ('scratch', 'standin')

def f0_path(comp, setting, seed): return OUT/comp/f'f0-{setting}-seed{seed}.npz'

def make_f0(comp:str, setting:str, seed:int, threads:int=int(os.environ.get("BENCH_THREADS", 1))) -> dict:
    "Train f0 (cached), return its test scores and the majority class's features from f0's layers and its start weights"
    fn = f0_path(comp, setting, seed)
    if fn.exists():
        with np.load(fn, allow_pickle=True) as f: return {k: f[k] for k in f.files}
    from fastai_subclass.features import extract_features
    torch.set_num_threads(threads)
    items = composition_items(comp)
    t = time.time()
    learn = train_model(items, setting, comp, seed, keep_start=True)
    scores = test_scores(learn, items)
    train = items[~items.is_valid].reset_index(drop=True)
    maj = train[train.label == MAJORITY]
    res = {f'f0_{k}': v for k, v in extract_features(learn, maj, 'auto', progress=False).items()}
    learn.model.load_state_dict(learn.start_state)  # the weights f0 started from: the stand-in, or the random init
    res.update({f'start_{k}': v for k, v in extract_features(learn, maj, ['body', 'pool'], progress=False).items()})
    res['subclass'] = maj.subclass.to_numpy().astype(str)
    res['scores'] = np.array(json.dumps(scores))
    fn.parent.mkdir(parents=True, exist_ok=True)
    tmp = fn.with_suffix('.tmp.npz'); np.savez(tmp, **res); tmp.replace(fn)
    print(f"{comp} {setting} seed {seed}: f0 trained in {time.time() - t:.0f} s; {scores}", flush=True)
    return res

if __name__ == '__main__':
    runs = [(sys.argv[1], sys.argv[2], int(sys.argv[3]))] if len(sys.argv) > 1 else \
           [(c, s, seed) for c in COMPOSITIONS for s in SETTINGS for seed in SEEDS]
    for r in runs: make_f0(*r)
