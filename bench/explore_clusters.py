"""Exploration (not the benchmark): clustering variants scored against the true subclasses.

    python bench/explore_clusters.py [COMP [SETTING [SEED]]]   # on the cached features of bench/discovery_f0.py
    python bench/explore_clusters.py --standin-size 64         # on the stand-ins of that size, before fine-tuning

The second form reads the majority class through the stand-ins of bench/discovery_standin_quality.py (trained and read at
that size) and writes bench/out/discovery/explore_clusters_s<size>.csv, copied to nbs/discovery/.
"""
import sys, warnings
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *
from discovery_f0 import f0_path, SEEDS, SETTINGS
from discovery import coverage, random_coverage, save
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score, calinski_harabasz_score, davies_bouldin_score
from sklearn.cluster import KMeans, HDBSCAN, AgglomerativeClustering
from sklearn.mixture import GaussianMixture
from fastai_subclass.core import find_subclasses, select_samples, Subclasses, standardize, pca_reduce, umap_embed, reduce_dims
warnings.filterwarnings('ignore')

def subclasses_from(labels, emb):
    labels = np.unique(labels, return_inverse=True)[1]
    k = labels.max() + 1
    centers = np.stack([emb[labels == c].mean(0) for c in range(k)]).astype(np.float32)
    # `reduced`: the space the clusters were found in (the map, or PCA-50), where `spread` covers them
    return Subclasses(labels.astype(np.int64), int(k), centers, emb.astype(np.float32), {}, reduced=emb.astype(np.float32))

def variants(x, seed=42, ks=range(2, 10)):
    "{name: (labels, emb)} of clustering variants of one feature matrix"
    out = {}
    xs = standardize(x); xp = pca_reduce(xs, 50, seed)
    emb = umap_embed(xp, seed)
    km_u = {k: KMeans(k, n_init=10, random_state=seed).fit(emb) for k in ks}
    km_p = {k: KMeans(k, n_init=10, random_state=seed).fit(xp) for k in ks}
    sil_u = {k: silhouette_score(emb, f.labels_) for k, f in km_u.items()}
    sil_p = {k: silhouette_score(xp, f.labels_) for k, f in km_p.items()}
    sil_up = {k: silhouette_score(xp, f.labels_) for k, f in km_u.items()}
    ch_u = {k: calinski_harabasz_score(emb, f.labels_) for k, f in km_u.items()}
    db_u = {k: -davies_bouldin_score(emb, f.labels_) for k, f in km_u.items()}
    best = lambda d: max(d, key=d.get)
    out['paper(umap2 km sil)'] = (km_u[best(sil_u)].labels_, emb)
    out['umap2 km sil-in-pca'] = (km_u[best(sil_up)].labels_, emb)
    out['umap2 km calinski'] = (km_u[best(ch_u)].labels_, emb)
    out['umap2 km davies'] = (km_u[best(db_u)].labels_, emb)
    out['pca50 km sil'] = (km_p[best(sil_p)].labels_, xp)
    for k in (3, 4):
        out[f'umap2 km k={k}'] = (km_u[k].labels_, emb)
    g = {k: GaussianMixture(k, covariance_type='full', n_init=3, random_state=seed).fit(emb) for k in ks}
    bic = {k: -m.bic(emb) for k, m in g.items()}
    out['umap2 gmm bic'] = (g[best(bic)].predict(emb), emb)
    for mcs in (15, 30):
        h = HDBSCAN(min_cluster_size=mcs).fit(emb)
        lab = h.labels_.copy()
        if (lab >= 0).any():
            # noise points join the nearest cluster centre
            cs = np.stack([emb[lab == c].mean(0) for c in range(lab.max() + 1)])
            noise = lab < 0
            lab[noise] = np.linalg.norm(emb[noise, None] - cs[None], axis=2).argmin(1)
        out[f'umap2 hdbscan mcs{mcs}'] = (lab, emb)
    ag = {k: AgglomerativeClustering(k, linkage='ward').fit(emb).labels_ for k in ks}
    out['umap2 ward sil'] = (ag[best({k: silhouette_score(emb, l) for k, l in ag.items()})], emb)
    return out

def evaluate_features(feats:dict, comp:str, seed:int, layers, **facts) -> pd.DataFrame:
    "One row per layer of `feats` and clustering variant: k, ARI, NMI, silhouette and the coverage of each strategy"
    truth, n, rows = feats['subclass'], COMPOSITIONS[comp]['n'], []
    for layer in layers:
        for name, (lab, emb) in variants(feats[layer], seed=seed).items():
            sc = subclasses_from(lab, emb)
            row = dict(comp=comp, **facts, seed=seed, layer=layer, variant=name, k=sc.k,
                       ari=adjusted_rand_score(truth, sc.labels), nmi=normalized_mutual_info_score(truth, sc.labels),
                       sil=silhouette_score(emb, sc.labels) if sc.k > 1 else np.nan)
            # `spread` covers each cluster in the space it was found in (the map, or PCA-50 for the PCA variant)
            for s in ('closest', 'farthest', 'random', 'spread'):
                row[f'cov_{s}'] = coverage(select_samples(sc, n, s, seed=seed), truth, n) if sc.k > 1 else np.nan
            row['cov_randomUS'] = random_coverage(truth, n)
            rows.append(row)
    return pd.DataFrame(rows)

def evaluate(comp, setting, seed, layers=('f0_body', 'f0_pool', 'f0_linear', 'start_body', 'start_pool')):
    return evaluate_features(dict(np.load(f0_path(comp, setting, seed), allow_pickle=True)), comp, seed, layers, setting=setting)

def evaluate_standins(size:int) -> pd.DataFrame:
    "The variants on the body / pool features of the stand-ins trained at `size` px (bench/discovery_standin_quality.py), seeds 0-2"
    from discovery_standin_quality import standin_features, variant_dir
    from standin import standin_path
    dfs = []
    for comp, c in COMPOSITIONS.items():
        feats = standin_features(comp, standin_path(c['standin'], variant_dir(30, size)), size)
        dfs += [evaluate_features(feats, comp, seed, ('body', 'pool'), setting=f'pretrained-s{size}') for seed in SEEDS]
    return pd.concat(dfs)

if __name__ == '__main__':
    pd.set_option('display.width', 250); pd.set_option('display.max_rows', 500)
    cols = ['k', 'ari', 'nmi', 'cov_closest', 'cov_farthest', 'cov_random', 'cov_spread', 'cov_randomUS']
    args = sys.argv[1:]
    if args[:1] == ['--standin-size']:
        df = evaluate_standins(int(args[1]))
        save(df, f'explore_clusters_s{args[1]}')
    else:
        comps = [args[0]] if args else list(COMPOSITIONS)
        settings = [args[1]] if len(args) > 1 else list(SETTINGS)
        seeds = [int(args[2])] if len(args) > 2 else list(SEEDS)
        df = pd.concat([evaluate(c, s, seed) for c in comps for s in settings for seed in seeds if f0_path(c, s, seed).exists()])
        OUT.mkdir(parents=True, exist_ok=True)
        df.to_csv(OUT/'explore_clusters.csv', index=False)
    print(df.groupby(['comp', 'setting', 'layer', 'variant'])[cols].median().round(2).to_string())
