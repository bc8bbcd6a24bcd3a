"""The known-subclass benchmark, f_u stage, with a fresh balanced draw every epoch instead of one undersampled set.

    BENCH_THREADS=1 nice -n 19 python bench/discovery_balanced.py            # train what is missing (cached), print the table
    python bench/discovery_balanced.py --table                               # the table from the cached runs only
    python bench/discovery_balanced.py --more-seeds                          # pretrained_dro and subclass_dro on seeds 3, 4 too
    python bench/discovery_balanced.py --eta-check                           # pretrained_dro with DRO step sizes 0.003 and 0.03

Methods (f_u from the stand-in, the paper's recipe, compositions A and B, seeds 0-2), each epoch n=150 majority items
and the minority classes whole, so every epoch has as many optimizer steps as the one-shot methods of
bench/discovery_fu.py:
- `subclass_balanced`: `sel.balanced_dataloaders(dls)`: each epoch a fresh draw of 150 majority items, equal shares of
  the clusters the paper's chain found in f0 (the chosen layer, as `subclass_closest` uses), cycling through each cluster;
- `subclass_weighted`: `sel.weighted_dataloaders(dls)`: 150 majority items an epoch drawn with weights 1 / cluster size;
- `oracle_balanced`: the balanced draw over the TRUE subclasses (an upper bound);
- `subclass_dro`: `subclass_balanced` trained with `GroupDRO` (the clusters and the minority classes as groups);
- `pretrained_balanced`, `pretrained_dro`: the same two on the clusters of the stand-in's own features before fine-tuning
  (`subclass_undersample(..., before_training=True)`), the paper's chain otherwise;
- controls without subclasses: `random_balanced` (each epoch a fresh random 150 of the majority class) and `class_dro`
  (that, trained with `GroupDRO` over the classes only); `oracle_dro`: `oracle_balanced` with `GroupDRO` over the true
  subclasses and the minority classes.
Each run's scores go to `bench/out/discovery/<comp>/fu-<method>-seed<s>.json`; the other methods' scores are read from
the cached runs of bench/discovery.py. The per-seed table goes to nbs/discovery/fu_balanced.csv (shown in
nbs/02b_balanced.ipynb).
"""
import argparse, json, os, sys, warnings
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *
from discovery_f0 import make_f0, SEEDS
from discovery_fu import fu_path, cached_run

DOCS = ROOT/'nbs'/'discovery'

NEW = ('subclass_balanced', 'subclass_weighted', 'oracle_balanced', 'subclass_dro', 'random_balanced', 'class_dro', 'oracle_dro',
       'pretrained_balanced', 'pretrained_dro')
SHOWN = ('random', 'random_balanced', 'class_dro', 'subclass_closest', 'subclass_cover', 'subclass_balanced', 'subclass_weighted',
         'subclass_dro', 'pretrained_spread', 'pretrained_balanced', 'pretrained_dro', 'oracle', 'oracle_balanced', 'oracle_dro')
DRO = ('subclass_dro', 'class_dro', 'oracle_dro', 'pretrained_dro')
DRO_ETA = 0.01

def selection(comp:str, seed:int, dls, groups:str='clusters'):
    "A `SubclassSelection` of the majority class of `dls` keeping 150: its `groups` are the paper's clusters of f0-standin, the 'truth' or 'none'"
    from fastai_subclass.select import ClassSelection, SubclassSelection, train_keys, train_labels
    import fastai_subclass.balanced  # noqa: F401 (balanced_dataloaders, weighted_dataloaders)
    from discovery import fu_methods, cluster_layers, paper_layer, oracle_keep
    f, n = make_f0(comp, 'standin', seed), COMPOSITIONS[comp]['n']
    keys, labels = train_keys(dls), train_labels(dls)
    idx = np.flatnonzero(np.array(labels) == MAJORITY)
    # f0's features are of the majority's training rows in the item table's order, as the loaders list them
    assert (dls.train_ds.items.subclass.to_numpy()[idx] == f['subclass']).all(), "f0's rows and the loaders' differ"
    if groups == 'truth':
        subs = np.unique(f['subclass'], return_inverse=True)[1].ravel()
        cs = ClassSelection(MAJORITY, idx, 'truth', subs, oracle_keep(f['subclass'], n, seed))
    elif groups == 'none':  # one subclass: each epoch a random n of the class
        cs = ClassSelection(MAJORITY, idx, 'none', np.zeros(len(idx), np.int64), fu_methods(comp, seed)['random'])
    else:  # the paper's clusters of f0 ('clusters') or of the stand-in before fine-tuning ('pretrained')
        by_layer = cluster_layers(comp, 'pretrained' if groups == 'pretrained' else 'standin', seed)
        layer = paper_layer(by_layer)
        # the kept set of `subclass_closest`: only its size (n) matters to the per-epoch draws
        cs = ClassSelection(MAJORITY, idx, layer, by_layer[layer].labels, fu_methods(comp, seed)['subclass_closest'], by_layer)
    return SubclassSelection(keys, labels, {MAJORITY: cs}, 'closest', seed, path=dls.path)

def dro_eta(method:str) -> tuple:
    "(method, eta): a DRO method may name another step size, e.g. 'pretrained_dro_eta0.03'"
    base, _, eta = method.partition('_eta')
    return base, float(eta) if eta else DRO_ETA

def train_epochwise(comp:str, method:str, seed:int, threads:int=int(os.environ.get("BENCH_THREADS", 1))) -> dict:
    "Scores of f_u trained with `method`'s per-epoch draw from the whole training set (cached)"
    base, eta = dro_eta(method)
    def train():
        from fastai_subclass.balanced import GroupDRO
        items = composition_items(comp)
        dls = item_dls(items, seed)
        sel = selection(comp, seed, dls, 'truth' if base.startswith('oracle') else 'none' if base in ('random_balanced', 'class_dro') else
                        'pretrained' if base.startswith('pretrained') else 'clusters')
        bdls = sel.weighted_dataloaders(dls) if base == 'subclass_weighted' else sel.balanced_dataloaders(dls)
        return train_drawn(items, comp, seed, sel, bdls, GroupDRO(eta) if base in DRO else None)
    return cached_run(comp, method, seed, train, threads)

def train_drawn(items, comp:str, seed:int, sel, bdls, cbs=None, **train_kw) -> tuple:
    "(f_u trained on the per-epoch draws of `bdls`, the facts of those draws), as `cached_run` wants them"
    steps = len(bdls.train)
    learn = train_model(items, 'standin', comp, seed, dls=bdls, cbs=cbs, **train_kw)
    return learn, dict(kept=int(len(sel.keep)), steps_per_epoch=steps, epochs_drawn=int(learn.dls.train.epoch))

def cached_rows(methods=SHOWN) -> pd.DataFrame:
    "One row per cached f_u run (composition, seed, method): mean ROC AUC and worst-true-subclass recall"
    rows = []
    for c in COMPOSITIONS:
        for s in SEEDS:
            for m in methods:
                if not fu_path(c, m, s).exists(): continue
                r = json.loads(fu_path(c, m, s).read_text())
                rows.append(dict(comp=c, seed=s, method=m, mean_roc_auc=r['mean_roc_auc'], worst_subclass_recall=r['worst_subclass_recall'],
                                 # the minority classes too: a method may raise the majority's recall at their expense
                                 worst_group_recall=min(v for k, v in r.items() if k.startswith('recall_')), accuracy=r['accuracy']))
    return pd.DataFrame(rows)

def table(fu:pd.DataFrame):
    "Print the medians over seeds and the paired differences"
    pd.set_option('display.width', 250)
    med = fu.groupby(['comp', 'method'])[['mean_roc_auc', 'worst_subclass_recall', 'worst_group_recall', 'accuracy']].median()
    order = [m for m in SHOWN if m in set(fu.method)]
    med = med.reindex([(c, m) for c in COMPOSITIONS for m in order]).dropna(how='all')
    print("f_u (stand-in setting), median over seeds", ', '.join(map(str, SEEDS)))
    print(med.round(3).to_string())
    for metric in ('worst_subclass_recall', 'mean_roc_auc', 'worst_group_recall'):
        wide = fu.pivot_table(index=['comp', 'seed'], columns='method', values=metric)
        rows = {}
        for m in ('subclass_balanced', 'subclass_weighted', 'subclass_dro', 'pretrained_spread', 'pretrained_balanced', 'pretrained_dro',
                  'class_dro', 'random_balanced', 'oracle_balanced', 'oracle_dro'):
            for base in ('subclass_closest', 'random'):
                if m in wide and base in wide: rows[f'{m} - {base}'] = (wide[m] - wide[base]).groupby('comp').median()
        print(f"\nPaired difference (per seed, then median over seeds), {metric}")
        print(pd.DataFrame(rows).T.round(3).to_string())

MORE_SEEDS = (3, 4)

def more_seeds(seeds=MORE_SEEDS, methods=('pretrained_dro', 'subclass_dro')):
    "A check beyond the benchmark's 3 seeds: `methods` and random undersampling on further seeds (f0 trained for each), paired to random"
    from discovery import fu_methods, per_seed_diff
    from discovery_fu import train_fu
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for c in COMPOSITIONS:
            for s in seeds:
                runs = {'random': train_fu(c, 'random', s, fu_methods(c, s)['random']), **{m: train_epochwise(c, m, s) for m in methods}}
                rows += [dict(comp=c, seed=s, method=m, mean_roc_auc=r['mean_roc_auc'], worst_subclass_recall=r['worst_subclass_recall'])
                         for m, r in runs.items()]
    fu = pd.concat([cached_rows(('random',) + tuple(methods)), pd.DataFrame(rows)], ignore_index=True)
    DOCS.mkdir(parents=True, exist_ok=True)
    fu.to_csv(DOCS/'fu_more_seeds.csv', index=False)  # per-seed rows, for nbs/11_discovery.ipynb
    print(f"Seeds {', '.join(map(str, SEEDS + tuple(seeds)))}: each method minus random undersampling, per seed")
    for metric in ('worst_subclass_recall', 'mean_roc_auc'):
        diff = per_seed_diff(fu, metric)[list(methods)]
        print(f"\n{metric}\n" + diff.round(3).to_string() + "\nmedian\n" + diff.groupby('comp').median().round(3).to_string())

ETAS = (0.003, 0.03)

def eta_check(etas=ETAS, method='pretrained_dro'):
    "`method` with other DRO step sizes (seeds 0-2), paired to random undersampling"
    from discovery import paired
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for eta in etas:
            for c in COMPOSITIONS:
                for s in SEEDS: train_epochwise(c, f'{method}_eta{eta}', s)
    names = [f'{method}_eta{e}' for e in etas[:1]] + [method] + [f'{method}_eta{e}' for e in etas[1:]]
    fu = cached_rows(('random',) + tuple(names))
    DOCS.mkdir(parents=True, exist_ok=True)
    fu.to_csv(DOCS/'fu_dro_eta.csv', index=False)  # per-seed rows, for nbs/11_discovery.ipynb
    print(f"{method} with eta {', '.join(str(dro_eta(n)[1]) for n in names)}: minus random undersampling, median over seeds {SEEDS}")
    for metric in ('worst_subclass_recall', 'mean_roc_auc'): print(f"\n{metric}\n" + paired(fu, metric)[names].round(3).to_string())

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--table', action='store_true', help="print the table from the cached runs only")
    p.add_argument('--methods', nargs='*', default=list(NEW), help="the per-epoch methods to train")
    p.add_argument('--more-seeds', action='store_true', help=f"also check pretrained_dro and subclass_dro on seeds {MORE_SEEDS} (trains f0 for them)")
    p.add_argument('--eta-check', action='store_true', help=f"also train pretrained_dro with the DRO step sizes {ETAS} (seeds {SEEDS})")
    a = p.parse_args(argv)
    if a.more_seeds: return more_seeds()
    if a.eta_check: return eta_check()
    if not a.table:
        for m in a.methods:
            if m not in NEW: raise SystemExit(f"unknown method {m!r}; the per-epoch methods are {NEW}")
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for m in a.methods:
                for c in COMPOSITIONS:
                    for s in SEEDS: train_epochwise(c, m, s)
    fu = cached_rows()
    table(fu)
    # per-seed rows for nbs/02b_balanced.ipynb (the bench's own output dir is not in the repository)
    DOCS.mkdir(parents=True, exist_ok=True)
    fu.to_csv(DOCS/'fu_balanced.csv', index=False)

if __name__ == '__main__': main()
