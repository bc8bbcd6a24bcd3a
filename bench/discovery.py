"""The known-subclass benchmark: do the discovered clusters find, and the kept sets keep, the real subclasses?

    python bench/discovery.py            # everything (stand-ins, f0, clusters, f_u; each stage cached in bench/out/)
    python bench/discovery.py --no-fu    # stand-ins, f0 and the cluster tables only

Data: two compositions of CIFAR-10 *test* images (bench/discovery_common.py): a majority class made of real classes in
skewed proportions (A 8:4:2:1, B 5:1:1 whose subclasses the stand-in never saw) and minority look-alike classes.
f0: from scratch, and fine-tuned from an offline stand-in for ImageNet weights with the paper's recipe (bs 25,
freeze 3 + unfreeze 8); and `pretrained`: the stand-in's own body / pool before any fine-tuning (what
`subclass_undersample(..., before_training=True)` clusters). For every composition / setting / seed and layer it scores the library's chain
(`find_subclasses`: the paper's) against the true subclasses: chosen k, silhouette, ARI, NMI, `cluster_strength`,
and the coverage of the kept set (for each true subclass kept / (n / #subclasses), the minimum) for each strategy,
next to random undersampling (median of 20 draws) and an oracle (n / #subclasses of each: coverage 1), and the ceiling of
the layer (`probe_ceiling`: what a classifier trained on the true subclasses gets from the same features). Then f_u
(stand-in setting) for random undersampling, the oracle and subclass undersampling with the paper's `closest` and
with `spread` and `cover`, and on the pretrained clusters with `closest` and `spread`, 3 seeds: mean ROC AUC and the
recall of the worst true subclass, medians and paired differences.
Tables: bench/out/discovery/*.csv, copied to nbs/discovery/ for nbs/11_discovery.ipynb.
"""
import argparse, functools, json, shutil, sys, warnings
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *
from discovery_f0 import make_f0, SEEDS, SETTINGS
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

LAYERS = ('body', 'pool', 'linear')
#: Where the features come from: f0 trained from scratch, f0 fine-tuned from the stand-in, and the stand-in itself before
#: fine-tuning ('pretrained': the backbone's body / pool; its head is untrained, so no linear layer)
CLUSTER_SETTINGS = ('scratch', 'standin', 'pretrained')
def setting_layers(setting:str) -> dict:
    "{layer: key in the cached f0 file} of the features a `setting` clusters"
    return {l: f'start_{l}' for l in ('body', 'pool')} if setting == 'pretrained' else {l: f'f0_{l}' for l in LAYERS}
def f0_of(setting:str) -> str: return 'standin' if setting == 'pretrained' else setting
DOCS = ROOT/'nbs'/'discovery'
DRAWS = 20

def coverage(kept, truth, n:int) -> float:
    "For each true subclass kept / (n / #subclasses); the minimum over subclasses"
    subs = np.unique(truth)
    return float(min((truth[kept] == s).sum() / (n / len(subs)) for s in subs))

def random_draw(m:int, n:int, seed:int) -> np.ndarray:
    "Random undersampling: a seeded draw of n of m items"
    return np.sort(np.random.default_rng(seed).choice(m, n, replace=False))

def random_coverage(truth, n:int) -> float:
    "Random undersampling's coverage: the median over `DRAWS` seeded draws of n items"
    return float(np.median([coverage(random_draw(len(truth), n, d), truth, n) for d in range(DRAWS)]))

def oracle_keep(truth, n:int, seed:int) -> np.ndarray:
    "n / #subclasses items of every true subclass, at random"
    from fastai_subclass.core import cluster_quotas
    subs = np.unique(truth); rng = np.random.default_rng(seed)
    q = cluster_quotas([(truth == s).sum() for s in subs], n)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(truth == s), k, replace=False) for s, k in zip(subs, q)]))

@functools.cache
def cluster_layers(comp:str, setting:str, seed:int) -> dict:
    "{layer: Subclasses} of the f0 layers of one cached f0 run (the library's chain, the given seed); made once per process"
    from fastai_subclass.core import find_subclasses
    f = make_f0(comp, f0_of(setting), seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return {l: find_subclasses(f[key], seed=seed) for l, key in setting_layers(setting).items()}

def probe_ceiling(feats, truth, n:int, seed:int=0) -> dict:
    """What these features allow with the labels no clustering has: a logistic regression on the standardized PCA-50
    features predicts each item's true subclass (5-fold, out of fold). `probe`: its balanced accuracy; `coverage_probe`:
    the coverage of n items drawn in equal shares of its predicted subclasses (as a perfect clustering would be used);
    `coverage_probe_confident`: the same shares taken from the items the probe is surest of (as `closest` would)"""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.metrics import balanced_accuracy_score
    from fastai_subclass.core import fit_projection, cluster_quotas
    xp = fit_projection(feats, 50, seed)[0]
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    proba = cross_val_predict(LogisticRegression(C=0.1, max_iter=3000, class_weight='balanced'), xp, truth, cv=cv,
                              method='predict_proba')
    subs, rng = np.unique(truth), np.random.default_rng(seed)
    pred = subs[proba.argmax(1)]
    groups = [np.flatnonzero(pred == s) for s in subs]
    quotas = cluster_quotas([len(g) for g in groups], n)
    kept = np.concatenate([rng.choice(g, q, replace=False) for g, q in zip(groups, quotas)])
    surest = np.concatenate([g[np.argsort(-proba[g, i], kind='stable')[:q]] for i, (g, q) in enumerate(zip(groups, quotas))])
    return dict(probe=float(balanced_accuracy_score(truth, pred)), coverage_probe=coverage(kept, truth, n),
                coverage_probe_confident=coverage(surest, truth, n))

def paper_layer(by_layer:dict) -> str:
    "The layer the paper keeps: the best silhouette"
    return max(by_layer, key=lambda l: np.nan_to_num(by_layer[l].silhouette, nan=-1))

def cluster_rows(comp:str, setting:str, seed:int) -> list:
    "One row per layer: k, silhouette, ARI, NMI, strength and the coverage of each strategy (cached)"
    from fastai_subclass.core import select_samples, cluster_strength, weak_reasons, STRATEGIES
    fn = OUT/comp/f'clusters-{setting}-seed{seed}.json'
    if fn.exists():
        rows = json.loads(fn.read_text())
        # the verdict under the library's current rule, from the figures the strength check measured
        for r in rows: r['weak'] = r['k'] < 2 or bool(weak_reasons(r['silhouette'], r['null_silhouette'], r['stability']))
        if all(f'coverage_{s}' in r for r in rows for s in STRATEGIES) and all('coverage_probe_confident' in r for r in rows): return rows
        # a strategy or the probe added since: computed from the same clusters (the strength checks are not rerun)
        f, n, keys = make_f0(comp, f0_of(setting), seed), COMPOSITIONS[comp]['n'], setting_layers(setting)
        by_layer = cluster_layers(comp, setting, seed)
        for r in rows:
            r.update({f'coverage_{s}': coverage(select_samples(by_layer[r['layer']], n, s, seed=seed), f['subclass'], n)
                      for s in STRATEGIES if f'coverage_{s}' not in r})
            if 'coverage_probe_confident' not in r: r.update(probe_ceiling(f[keys[r['layer']]], f['subclass'], n, seed))
        tmp = fn.with_suffix('.tmp'); tmp.write_text(json.dumps(rows)); tmp.replace(fn)
        return rows
    f, n, keys = make_f0(comp, f0_of(setting), seed), COMPOSITIONS[comp]['n'], setting_layers(setting)
    truth = f['subclass']
    by_layer, rows = cluster_layers(comp, setting, seed), []
    chosen = paper_layer(by_layer)
    rand = random_coverage(truth, n)
    for layer, sc in by_layer.items():
        strength = cluster_strength(f[keys[layer]], seed=seed)
        row = dict(comp=comp, setting=setting, seed=seed, layer=layer, chosen=layer == chosen, k=sc.k,
                   silhouette=sc.silhouette, null_silhouette=strength['null_silhouette'], stability=strength['stability'],
                   weak=strength['weak'], ari=adjusted_rand_score(truth, sc.labels), nmi=normalized_mutual_info_score(truth, sc.labels))
        row.update({f'coverage_{s}': coverage(select_samples(sc, n, s, seed=seed), truth, n) for s in STRATEGIES})
        row.update(coverage_random_undersampling=rand, coverage_oracle=coverage(oracle_keep(truth, n, seed), truth, n),
                   **probe_ceiling(f[keys[layer]], truth, n, seed))
        rows.append({k: (v.item() if hasattr(v, 'item') else v) for k, v in row.items()})
    tmp = fn.with_suffix('.tmp'); tmp.write_text(json.dumps(rows)); tmp.replace(fn)
    return rows

def fu_methods(comp:str, seed:int) -> dict:
    "{method: kept positions among the majority class's training items} for the f_u runs (stand-in setting)"
    from fastai_subclass.core import select_samples
    f, n = make_f0(comp, 'standin', seed), COMPOSITIONS[comp]['n']
    by_layer = cluster_layers(comp, 'standin', seed)
    sc = by_layer[paper_layer(by_layer)]
    pre = cluster_layers(comp, 'pretrained', seed)
    return {'random': random_draw(len(f['subclass']), n, seed), 'oracle': oracle_keep(f['subclass'], n, seed),
            **{f'subclass_{s}': select_samples(sc, n, s, seed=seed) for s in ('closest', 'spread', 'cover')},
            # the clusters of the stand-in's own features, before fine-tuning
            **{f'pretrained_{s}': select_samples(pre[paper_layer(pre)], n, s, seed=seed) for s in ('closest', 'spread')}}

def fu_rows(comp:str, seed:int) -> list:
    from discovery_fu import train_fu
    truth, n = make_f0(comp, 'standin', seed)['subclass'], COMPOSITIONS[comp]['n']
    rows = []
    for method, kept in fu_methods(comp, seed).items():
        s = train_fu(comp, method, seed, kept)
        rows.append(dict(comp=comp, seed=seed, method=method, coverage=coverage(kept, truth, n), mean_roc_auc=s['mean_roc_auc'],
                         worst_subclass_recall=s['worst_subclass_recall'], accuracy=s['accuracy'],
                         **{k: v for k, v in s.items() if k.startswith('recall_')}))
    return rows

def per_seed_diff(fu:pd.DataFrame, metric:str, base:str='random') -> pd.DataFrame:
    "Each method's `metric` minus `base`'s on the same composition and seed (rows: composition, seed)"
    wide = fu.pivot_table(index=['comp', 'seed'], columns='method', values=metric)
    return wide.sub(wide[base], axis=0).drop(columns=base)

def paired(fu:pd.DataFrame, metric:str, base:str='random') -> pd.DataFrame:
    "Median over seeds of each method's `metric` minus `base`'s on the same composition and seed"
    return per_seed_diff(fu, metric, base).groupby('comp').median()

def plot_maps(seed:int=0, fname='maps.png'):
    "For each composition (stand-in f0, the paper's layer): the 2-D map by true subclass, and the items `closest` / `spread` keep"
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    from fastai_subclass.core import select_samples
    fig, axs = plt.subplots(len(COMPOSITIONS), 3, figsize=(15, 4.6 * len(COMPOSITIONS)))
    for row, comp in zip(axs, COMPOSITIONS):
        f, n = make_f0(comp, 'standin', seed), COMPOSITIONS[comp]['n']
        by_layer = cluster_layers(comp, 'standin', seed); layer = paper_layer(by_layer); sc = by_layer[layer]
        truth, emb = f['subclass'], sc.embedding
        subs = list(COMPOSITIONS[comp]['subclasses'])
        for ax, what in zip(row, ('truth', 'closest', 'spread')):
            kept = None if what == 'truth' else select_samples(sc, n, what, seed=seed)
            ax.scatter(*emb.T, s=3, c='lightgrey' if kept is not None else None, alpha=0.6 if kept is not None else 0)
            for i, s in enumerate(subs):
                m = truth == s if kept is None else np.isin(np.arange(len(truth)), kept) & (truth == s)
                ax.scatter(*emb[m].T, s=6 if kept is None else 14, color=f'C{i}', label=f'{s} ({m.sum()})')
            ax.legend(fontsize=8, markerscale=2)
            ax.set_title(f"{comp}: {'true subclasses' if kept is None else what + f' keeps {n}'} (f0 {layer}, k={sc.k})", fontsize=10)
            ax.set_xticks([]); ax.set_yticks([])
    fig.tight_layout()
    DOCS.mkdir(parents=True, exist_ok=True)
    fig.savefig(DOCS/fname, dpi=72); plt.close(fig)

def save(df:pd.DataFrame, name:str):
    OUT.mkdir(parents=True, exist_ok=True); DOCS.mkdir(parents=True, exist_ok=True)
    tmp = OUT/f'{name}.tmp'; df.to_csv(tmp, index=False); tmp.replace(OUT/f'{name}.csv')
    shutil.copyfile(OUT/f'{name}.csv', DOCS/f'{name}.csv')

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--no-fu', action='store_true', help="stop after the cluster tables")
    a = p.parse_args(argv)
    pd.set_option('display.width', 250); pd.set_option('display.max_columns', 30)
    from standin import make_standin
    for name in {c['standin'] for c in COMPOSITIONS.values()}: make_standin(name)
    clusters = pd.DataFrame([r for c in COMPOSITIONS for s in CLUSTER_SETTINGS for seed in SEEDS for r in cluster_rows(c, s, seed)])
    save(clusters, 'clusters')
    plot_maps()
    cols = ['k', 'silhouette', 'null_silhouette', 'stability', 'weak', 'ari', 'nmi', 'coverage_closest', 'coverage_farthest',
            'coverage_random', 'coverage_spread', 'coverage_cover', 'coverage_random_undersampling', 'coverage_oracle', 'probe', 'coverage_probe', 'coverage_probe_confident']
    print("Clusters of f0's layers against the true subclasses (median over 3 seeds; weak = share of seeds flagged)")
    print(clusters.groupby(['comp', 'setting', 'layer'])[cols].median(numeric_only=False).round(2).to_string())
    print("\nThe layer the paper's rule keeps (best silhouette), median over seeds")
    print(clusters[clusters.chosen].groupby(['comp', 'setting'])[cols].median().round(2).to_string())
    if a.no_fu: return
    fu = pd.DataFrame([r for c in COMPOSITIONS for seed in SEEDS for r in fu_rows(c, seed)])
    save(fu, 'fu')
    print("\nf_u (stand-in setting), median over 3 seeds")
    print(fu.groupby(['comp', 'method'])[['coverage', 'mean_roc_auc', 'worst_subclass_recall', 'accuracy']].median().round(3).to_string())
    for metric in ('worst_subclass_recall', 'mean_roc_auc'):
        print(f"\nPaired difference to random undersampling, {metric} (median over seeds)")
        print(paired(fu, metric).round(3).to_string())

if __name__ == '__main__': main()
