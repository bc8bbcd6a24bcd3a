"""Exploration (not the benchmark): split every cluster again where its own clustering is not weak.

bench/explore_recursive.py split clusters down to a fixed depth and found that deeper trees lower the ARI. Here the
stopping rule is the library's own weak-cluster check: after the chain (`find_subclasses`) has clustered a class, each
cluster of at least 40 items is clustered again on its own (the same chain and clusterer, the same seed), and split only
where `cluster_strength` does not call that clustering weak (its silhouette at least 1.2 times structureless data's,
stable across seeds); the parts are treated the same way, two levels down at most. The leaves are the subclasses.

Scored as bench/discovery_standin_quality.py scores the chain: the majority class of each composition through the
stand-ins before any fine-tuning (32 px, and 64 px: bench/out/standin, bench/out/standin-s64-e30), the layer the
paper's rule keeps, both clusterers, seeds 0-2: the number of clusters, ARI, and the coverage of a random draw of equal
shares per cluster and of `spread`, for the chain's clusters and for the leaves. The table goes to
nbs/discovery/explore_split.csv.

    python bench/explore_split.py      # about 10 min on 2 cores once the stand-ins are cached
"""
import sys, warnings
from dataclasses import replace
from pathlib import Path
import numpy as np, pandas as pd, torch
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *
from discovery import coverage, paper_layer, save, SEEDS
from discovery_standin_quality import SCORED, variant_dir, standin_features
from standin import standin_path

MIN_SIZE, MAX_DEPTH = 40, 2

def split_weakless(feats, sc, seed:int, depth:int=0):
    "Index arrays of the leaves below one cluster's items `feats` (clustered as `sc`'s clusterer): split while not weak"
    from fastai_subclass.core import find_subclasses, cluster_strength
    def leaves(idx, depth):
        if depth >= MAX_DEPTH or len(idx) < MIN_SIZE: return [idx]
        sub = find_subclasses(feats[idx], seed=seed, clusterer=sc.clusterer)
        if sub.k < 2 or cluster_strength(feats[idx], seed=seed, subclasses=sub, clusterer=sc.clusterer)['weak']: return [idx]
        return [l for c in range(sub.k) for l in leaves(idx[sub.labels == c], depth + 1)]
    parts = [l for c in range(sc.k) for l in leaves(np.flatnonzero(sc.labels == c), 0)]
    labels = np.empty(len(sc.labels), np.int64)
    for i, p in enumerate(parts): labels[p] = i
    return replace(sc, labels=labels, k=len(parts), centers=np.stack([sc.embedding[p].mean(0) for p in parts]).astype(np.float32))

def main():
    from sklearn.metrics import adjusted_rand_score
    from fastai_subclass.core import find_subclasses, select_samples, CLUSTERERS
    torch.set_num_threads(2); warnings.simplefilter('ignore')
    rows = []
    for size in (SIZE, 64):
        for comp, standin in SCORED:
            feats = standin_features(comp, standin_path(standin, variant_dir(30, size)), size)
            truth, n = feats['subclass'], composition(comp)['n']
            for clusterer in CLUSTERERS:
                for seed in SEEDS:
                    by_layer = {l: find_subclasses(feats[l], seed=seed, clusterer=clusterer) for l in ('body', 'pool')}
                    layer = paper_layer(by_layer)
                    for clusters, sc in (('chain', by_layer[layer]), ('split', split_weakless(feats[layer], by_layer[layer], seed))):
                        rows.append(dict(size=size, comp=comp, standin=standin, clusterer=clusterer, seed=seed, layer=layer, clusters=clusters,
                                         k=sc.k, ari=adjusted_rand_score(truth, sc.labels),
                                         **{f'coverage_{s}': coverage(select_samples(sc, n, s, seed=seed), truth, n) for s in ('random', 'spread')}))
                print(size, comp, standin, clusterer, flush=True)
    df = pd.DataFrame(rows)
    save(df, 'explore_split')
    pd.set_option('display.width', 200)
    print(df.pivot_table(index=['size', 'comp', 'standin', 'clusterer'], columns='clusters',
                         values=['k', 'ari', 'coverage_random', 'coverage_spread'], aggfunc='median').round(2).to_string())

if __name__ == '__main__': main()
