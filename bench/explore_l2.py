"""Does `find_subclasses(..., l2_normalize=True)` (each feature row scaled to unit length before the chain) find the true subclasses better?

    BENCH_THREADS=2 python bench/explore_l2.py   # about 15 min on 2 cores once bench/explore_weak.py's sources are cached (then cached per source)

Every clustering bench/explore_weak.py checks (f0 from scratch and fine-tuned on A-D; the five stand-in variants'
backbones before fine-tuning on A, B, the control B through `all` and the held-out C and D), seeds 0-2, both clusterers,
with the chain as published and with `l2_normalize`. Per (source, seed, clusterer, l2_normalize): the layer the paper's
rule keeps (best silhouette), its k and ARI against the true subclasses, and the coverage of every selection strategy
next to random undersampling's (bench/discovery.py's `coverage`). For spectral clustering of the stand-ins' backbones
with `l2_normalize` (the setting the library documents it for) also `cluster_strength`'s verdict, as
`subclass_undersample` would warn. Table: nbs/discovery/explore_l2.csv (nbs/11_discovery reads it).
"""
import sys, warnings
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *
from discovery import coverage, paper_layer, random_coverage, save
from explore_weak import sources, cached_source_rows

CACHE = OUT.parent/'l2'

def source_rows(setting:str, standin:str, comp:str, seed:int, layers:dict, truth) -> list:
    "One row per (clusterer, l2_normalize): the chosen layer's k, ARI, coverage of every strategy and (see above) the check's verdict"
    from sklearn.metrics import adjusted_rand_score
    from fastai_subclass.core import find_subclasses, select_samples, cluster_strength, CLUSTERERS, STRATEGIES
    n, rows = composition(comp)['n'], []
    for clusterer in CLUSTERERS:
        for l2 in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                by_layer = {l: find_subclasses(x, seed=seed, clusterer=clusterer, l2_normalize=l2) for l, x in layers.items()}
                layer = paper_layer(by_layer); sc = by_layer[layer]
                checked = setting == 'pretrained' and clusterer == 'spectral' and l2
                weak = cluster_strength(layers[layer], seed=seed, subclasses=sc, clusterer=clusterer, l2_normalize=l2)['weak'] if checked else None
            rows.append(dict(setting=setting, standin=standin, comp=comp, seed=seed, clusterer=clusterer, l2_normalize=l2, layer=layer,
                             k=int(sc.k), ari=float(adjusted_rand_score(truth, sc.labels)), weak=weak,
                             **{f'coverage_{s}': coverage(select_samples(sc, n, s, seed=seed), truth, n) for s in STRATEGIES},
                             coverage_random_undersampling=random_coverage(truth, n)))
    return rows

def l2_rows() -> pd.DataFrame:
    "The rows of every source, cached per source in bench/out/l2/"
    return pd.DataFrame([r for src in sources() for r in cached_source_rows(CACHE, source_rows, *src)])

if __name__ == '__main__':
    df = l2_rows()
    save(df, 'explore_l2')
    pd.set_option('display.width', 250)
    cols = ['ari', 'coverage_closest', 'coverage_random', 'coverage_spread', 'coverage_flatten', 'coverage_random_undersampling']
    print(df.groupby(['setting', 'standin', 'comp', 'clusterer', 'l2_normalize'])[cols].median().round(2).to_string())
