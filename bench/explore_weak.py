"""Does the weak-cluster check (`cluster_strength`) fire where the clusters miss the true subclasses, and only there?

    BENCH_THREADS=2 python bench/explore_weak.py   # about 40 min on 2 cores once the stand-ins are cached (then cached per source)
    python bench/explore_weak.py --brightness      # what spectral clusters of f0 from scratch follow: the images' brightness

Every clustering the discovery benchmark makes, with both of `find_subclasses`' clusterers (k-means in the map, the
paper's; spectral on the PCA space's neighbour graph), on every layer: f0 from scratch and f0 fine-tuned from the
stand-in (bench/discovery_f0.py's runs, seeds 0-2: A and B, cached by the benchmark, and the held-out C and D, trained
here on first use: 12 runs of 1-2 min, which no choice of the check's rule saw), and the stand-ins' own backbones before any
fine-tuning (`before_training=True`) for each stand-in variant of bench/discovery_standin_quality.py that is cached,
on every composition it scores (A, B, the control B through `all`, the held-out C and D). Per clustering: k, the
ARI against the true subclasses, and `cluster_strength`'s silhouette, the null's silhouette and the stability (its
verdict follows from these three: `weak_reasons`); and `subsample_stability`: the stability when each rerun also
clusters another random 80% of the items. Table: nbs/discovery/weak_check.csv (nbs/11_discovery reads it).
"""
import json, sys, warnings
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *
from discovery import save, setting_layers, SEEDS
from discovery_f0 import make_f0
from discovery_standin_quality import SCORED, standin_features, variant_dir
from standin import standin_path

#: The stand-in variants scored (epochs, size, ssl): bench/standin.py's own, 90 epochs, 64 px, SimCLR 30 / 90 epochs
VARIANTS = ((30, SIZE, 0.), (90, SIZE, 0.), (30, 64, 0.), (30, SIZE, 1.), (90, SIZE, 1.))
CACHE = OUT.parent/'weak'
#: The compositions whose f0 runs are checked: the benchmark's, and the held-out ones (C, D: clusterings made after the rule was chosen)
F0_COMPS = (*COMPOSITIONS, *HOLDOUT)

def variant_name(epochs:int, size:int, ssl:float) -> str: return variant_dir(epochs, size, ssl).name

def variant_features(comp:str, standin:str, epochs:int, size:int, ssl:float) -> dict:
    "`standin_features` of one stand-in variant (None where it is not cached), kept in bench/out/weak/"
    weights = standin_path(standin, variant_dir(epochs, size, ssl))
    if not weights.exists(): return None
    fn = CACHE/f'{variant_name(epochs, size, ssl)}-{comp}-{standin}.npz'
    if not fn.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = fn.with_suffix('.tmp.npz'); np.savez(tmp, **standin_features(comp, weights, size)); tmp.replace(fn)
    return dict(np.load(fn))

def sources():
    "(setting, standin variant, composition, seed, {layer: features}, truth) of every clustering to check"
    for setting in ('scratch', 'standin'):
        for comp in F0_COMPS:
            for seed in SEEDS:
                f = make_f0(comp, setting, seed)
                yield setting, '', comp, seed, {l: f[k] for l, k in setting_layers(setting).items()}, f['subclass'].astype(str)
    for v in VARIANTS:
        for comp, standin in SCORED:
            f = variant_features(comp, standin, *v)
            if f is None: continue
            for seed in SEEDS: yield 'pretrained', f'{variant_name(*v)}:{standin}', comp, seed, {l: f[l] for l in ('body', 'pool')}, f['subclass']

def subsample_stability(x, sc, seed:int, clusterer:str, reruns:int=2, frac:float=0.8) -> float:
    "Mean ARI between the clusters `sc` of `x` and those of `reruns` runs on random `frac` subsamples (other seeds), on the items they share"
    from sklearn.metrics import adjusted_rand_score
    from fastai_subclass.core import find_subclasses
    aris = []
    for i in range(1, reruns + 1):
        idx = np.sort(np.random.default_rng(seed + i).choice(len(x), int(frac * len(x)), replace=False))
        aris.append(adjusted_rand_score(sc.labels[idx], find_subclasses(x[idx], seed=seed + i, clusterer=clusterer).labels))
    return float(np.mean(aris))

def cached_source_rows(cache:Path, make, setting:str, standin:str, comp:str, seed:int, layers:dict, truth) -> list:
    "The rows `make(setting, standin, comp, seed, layers, truth)` gives for one of `sources()`, cached as JSON in `cache`"
    fn = cache/f"rows-{setting}-{standin.replace(':', '_') or 'f0'}-{comp}-seed{seed}.json"
    if not fn.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = fn.with_suffix('.tmp'); tmp.write_text(json.dumps(make(setting, standin, comp, seed, layers, truth))); tmp.replace(fn)
        print(setting, standin, comp, seed, flush=True)
    return json.loads(fn.read_text())

def source_rows(setting:str, standin:str, comp:str, seed:int, layers:dict, truth) -> list:
    "One row per (layer, clusterer) of one source: k, ARI and `cluster_strength`'s figures"
    from sklearn.metrics import adjusted_rand_score
    from fastai_subclass.core import find_subclasses, cluster_strength, CLUSTERERS
    rows = []
    for layer, x in layers.items():
        for clusterer in CLUSTERERS:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                sc = find_subclasses(x, seed=seed, clusterer=clusterer)
                s = cluster_strength(x, seed=seed, subclasses=sc, clusterer=clusterer)
                sub = subsample_stability(x, sc, seed, clusterer)
            rows.append(dict(setting=setting, standin=standin, comp=comp, seed=seed, layer=layer, clusterer=clusterer, k=int(sc.k),
                             ari=float(adjusted_rand_score(truth, sc.labels)), **{k: float(s[k]) for k in ('silhouette', 'null_silhouette', 'stability')},
                             subsample_stability=sub))
    return rows

def check_rows() -> pd.DataFrame:
    "One row per (source, seed, layer, clusterer): k, ARI and `cluster_strength`'s figures (cached per source)"
    return pd.DataFrame([r for src in sources() for r in cached_source_rows(CACHE, source_rows, *src)])

def brightness_rows() -> pd.DataFrame:
    "Spectral clusters of f0 from scratch (pool layer): size, mean image brightness and the ARI against the true subclasses"
    from PIL import Image
    from sklearn.metrics import adjusted_rand_score
    from fastai_subclass.core import find_subclasses
    rows = []
    for comp in COMPOSITIONS:
        items = composition_items(comp)
        maj = items[(~items.is_valid) & (items.label == MAJORITY)]  # in the order bench/discovery_f0.py saved the features
        bright = np.array([np.asarray(Image.open(f).convert('RGB'), dtype=np.float32).mean() / 255 for f in maj.path])
        for seed in SEEDS:
            f = make_f0(comp, 'scratch', seed)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                sc = find_subclasses(f['f0_pool'], seed=seed, clusterer='spectral')
            rows += [dict(comp=comp, seed=seed, cluster=c, size=int((sc.labels == c).sum()), brightness=bright[sc.labels == c].mean(),
                          ari=adjusted_rand_score(f['subclass'].astype(str), sc.labels)) for c in range(sc.k)]
    return pd.DataFrame(rows)

if __name__ == '__main__':
    if '--brightness' in sys.argv: print(brightness_rows().round(3).to_string(index=False)); sys.exit()
    df = check_rows()
    save(df, 'weak_check')
    from fastai_subclass.core import weak_reasons
    df['weak'] = [bool(weak_reasons(*r)) for r in df[['silhouette', 'null_silhouette', 'stability']].itertuples(index=False)]
    df['truth'] = pd.cut(df.ari, [-1, 0.2, 0.5, 1], labels=['ARI < 0.2', '0.2-0.5', 'ARI >= 0.5'])
    print(pd.crosstab([df.clusterer, df.weak], df.truth))
