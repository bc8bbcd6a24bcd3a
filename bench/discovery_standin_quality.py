"""Does a better stand-in find the subclasses better? The `pretrained` setting of the benchmark with stand-ins trained longer or larger.

    python bench/discovery_standin_quality.py --epochs 90              # the two stand-ins trained 90 epochs (cached), then scored
    python bench/discovery_standin_quality.py --epochs 30 --size 64    # trained (and clustered) at 64 px, the images upsampled
    python bench/discovery_standin_quality.py --epochs 30 --size 64 --fu --fu-holdout   # f_u, also on C and D
    python bench/discovery_standin_quality.py --epochs 90 --ssl 1      # stand-ins that also learnt SimCLR's contrastive task
    python bench/discovery_standin_quality.py --epochs 90 --ssl 1 --fu --fu-holdout --fu-methods random pretrained_dro pretrained_spectral_dro
    python bench/discovery_standin_quality.py --epochs 30 --size 64 --fu --fu-holdout --fu-name fu_l2_s64 \
        --fu-methods random pretrained_dro pretrained_spectral_l2_closest pretrained_spectral_l2_dro   # on the unit-length features' clusters

bench/standin.py's stand-ins train 30 epochs at 32 px (validation accuracy 0.743 / 0.821). Here the same stand-ins trained for
`--epochs` at `--size` px go to bench/out/standin-e<epochs>/ (bench/out/standin-s<size>-e<epochs>/ for another size;
standin-ssl<w>-e<epochs>/ for those trained with `--ssl w`, bench/standin.py's contrastive loss), and
the majority class of each composition is clustered through each
stand-in's own backbone before any fine-tuning (`subclass_undersample(..., before_training=True)` does this), as the
`pretrained` setting of bench/discovery.py does: for seeds 0-2, the chosen layer's k, ARI, coverage of `closest`,
`spread` and `random`, and of `flatten` (no clusters: a draw that flattens the class's density), and the probe
ceilings (bench/discovery.py `probe_ceiling`). The features are read at the size the stand-in was trained at, and each layer is clustered with both of `find_subclasses`' clusterers (k-means in the map,
the paper's; spectral on the PCA space's neighbour graph). Controls: composition B through the stand-in `all`, which saw
B's subclasses (is B hard because its stand-in never saw them, or hard anyway?), and the held-out compositions C and D
(bench/discovery_common.py `HOLDOUT`), which no choice was made on. Prints the benchmark's stand-ins and these side by side; the table goes to
nbs/discovery/standin_quality.csv (standin_quality_s<size>.csv for another size, standin_quality_ssl<w>_e<epochs>.csv with `--ssl`).
"""
import argparse, functools, json, sys, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *
from discovery import coverage, probe_ceiling, paper_layer, random_coverage, save, SEEDS
from standin import make_standin, standin_path, OUT as STANDIN_OUT

def variant_dir(epochs:int, size:int=SIZE, ssl:float=0.) -> Path:
    "Where the stand-ins trained `epochs` at `size` px (with `ssl` x SimCLR's loss) are kept: bench/standin.py's own for 30 epochs at 32 px"
    if (epochs, size, ssl) == (30, SIZE, 0): return STANDIN_OUT
    return STANDIN_OUT.parent/('standin' + ('' if size == SIZE else f'-s{size}') + (f'-ssl{ssl:g}' if ssl else '') + f'-e{epochs}')

def standin_features(comp:str, weights, size:int=SIZE) -> dict:
    "{'body', 'pool', 'subclass'}: the majority class's training items at `size` px through the stand-in `weights`, before any training"
    from fastai.vision.all import resnet18
    from fastai_subclass.train import subclass_learner
    from fastai_subclass.features import extract_features
    items = composition_items(comp)
    train = items[~items.is_valid].reset_index(drop=True)
    maj = train[train.label == MAJORITY]
    learn = subclass_learner(item_dls(items, 0, size), resnet18, weights_file=weights)
    return {**extract_features(learn, maj, ['body', 'pool'], progress=False), 'subclass': maj.subclass.to_numpy().astype(str)}

def score(comp:str, feats:dict, seed:int) -> list:
    "The chosen layer's clustering against the true subclasses, as bench/discovery.py scores it; one row per clusterer"
    from sklearn.metrics import adjusted_rand_score
    from fastai_subclass.core import find_subclasses, select_samples, cluster_strength, CLUSTERERS
    truth, n, rows = feats['subclass'], composition(comp)['n'], []
    for clusterer in CLUSTERERS:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            by_layer = {l: find_subclasses(feats[l], seed=seed, clusterer=clusterer) for l in ('body', 'pool')}
            layer = paper_layer(by_layer); sc = by_layer[layer]
            # the library's weak-cluster check, as subclass_undersample runs it on the chosen layer
            weak = cluster_strength(feats[layer], seed=seed, subclasses=sc, clusterer=clusterer)['weak']
        rows.append(dict(comp=comp, seed=seed, clusterer=clusterer, layer=layer, k=sc.k, weak=weak, ari=adjusted_rand_score(truth, sc.labels),
                         **{f'coverage_{s}': coverage(select_samples(sc, n, s, seed=seed), truth, n) for s in ('closest', 'spread', 'random', 'flatten')},
                         coverage_random_undersampling=random_coverage(truth, n),
                         **probe_ceiling(feats[layer], truth, n, seed)))
    return rows

#: What each stand-in variant is scored on: (composition, stand-in): each composition through its own; the controls: B
#: through the stand-in that saw its subclasses, and the held-out compositions C and D
SCORED = [(comp, c['standin']) for comp, c in COMPOSITIONS.items()] + [('B', 'all')] + [(comp, c['standin']) for comp, c in HOLDOUT.items()]

FU_METHODS = ('random', 'pretrained_spread', 'pretrained_flatten', 'pretrained_dro', 'pretrained_spectral_dro')
#: f_u on the spectral clusters of the features scaled to unit length (`l2_normalize`): the paper's one-shot `closest` and the per-epoch draws with group DRO
L2_FU_METHODS = ('pretrained_spectral_l2_closest', 'pretrained_spectral_l2_dro')
#: f_u on the held-out compositions: does the recipe that met the f_u goal on A and B hold where nothing was chosen?
HOLDOUT_FU_METHODS = ('random', 'pretrained_dro')

def fu_rows(comp:str, seed:int, weights, size:int, tag:str, threads:int, methods=FU_METHODS) -> list:
    """f_u fine-tuned from the stand-in `weights` at `size` px (the benchmark's recipe), for random undersampling and, on the
    clusters of that stand-in before fine-tuning, the kept sets of `spread` and `flatten` and the per-epoch draws with
    group DRO (on the map's k-means clusters, and on the spectral ones: `pretrained_spectral_dro`), and `L2_FU_METHODS`:
    `closest`'s kept set and the DRO draws on the spectral clusters of the features scaled to unit length; one row for
    each of `methods` (cached)"""
    from fastai.vision.all import resnet18
    from fastai_subclass.train import subclass_learner
    from fastai_subclass.select import subclass_undersample
    from fastai_subclass.balanced import GroupDRO
    from discovery import random_draw
    from discovery_balanced import train_drawn, DRO_ETA
    from discovery_fu import train_fu, cached_run
    items, n = composition_items(comp), composition(comp)['n']
    m = int(((items.label == MAJORITY) & ~items.is_valid).sum())
    @functools.cache
    def selected(clusterer='kmeans', strategy='spread', l2_normalize=False):
        "(the loaders, the library's selection through the stand-in before training: `strategy`, the paper's chain otherwise)"
        dls = item_dls(items, seed, size)
        learn = subclass_learner(dls, resnet18, weights_file=weights)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return dls, subclass_undersample(learn, n, classes=[MAJORITY], strategy=strategy, seed=seed, progress=False, check=False,
                                             before_training=True, clusterer=clusterer, l2_normalize=l2_normalize)
    def one_shot(strategy, clusterer='kmeans', l2_normalize=False):
        dls, sel = selected(clusterer, strategy, l2_normalize)
        return train_model(items, 'standin', comp, seed, dls=sel.dataloaders(dls), weights=weights, size=size), dict(kept=int(len(sel.keep)))
    def dro(clusterer='kmeans', l2_normalize=False):
        dls, sel = selected(clusterer, l2_normalize=l2_normalize)
        return train_drawn(items, comp, seed, sel, sel.balanced_dataloaders(dls), GroupDRO(DRO_ETA), weights=weights, size=size)
    make = {'random': lambda: train_fu(comp, f'random-{tag}', seed, random_draw(m, n, seed), threads=threads, weights=weights, size=size),
            'pretrained_spread': lambda: cached_run(comp, f'pretrained_spread-{tag}', seed, lambda: one_shot('spread'), threads),
            'pretrained_flatten': lambda: cached_run(comp, f'pretrained_flatten-{tag}', seed, lambda: one_shot('flatten'), threads),
            'pretrained_dro': lambda: cached_run(comp, f'pretrained_dro-{tag}', seed, dro, threads),
            'pretrained_spectral_dro': lambda: cached_run(comp, f'pretrained_spectral_dro-{tag}', seed, lambda: dro('spectral'), threads),
            'pretrained_spectral_l2_closest': lambda: cached_run(comp, f'pretrained_spectral_l2_closest-{tag}', seed,
                                                                 lambda: one_shot('closest', 'spectral', True), threads),
            'pretrained_spectral_l2_dro': lambda: cached_run(comp, f'pretrained_spectral_l2_dro-{tag}', seed, lambda: dro('spectral', True), threads)}
    runs = {k: make[k]() for k in methods}
    return [dict(comp=comp, seed=seed, method=k, mean_roc_auc=r['mean_roc_auc'], worst_subclass_recall=r['worst_subclass_recall'],
                 accuracy=r['accuracy'], train_s=r['train_s']) for k, r in runs.items()]

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=90)
    p.add_argument('--size', type=int, default=SIZE, help="px the stand-ins are trained and read at (the images upsampled)")
    p.add_argument('--ssl', type=float, default=0., help="weight of SimCLR's loss the stand-ins also learnt (bench/standin.py --ssl)")
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--fu', action='store_true', help=f"also train f_u from the --epochs/--size stand-ins: {', '.join(FU_METHODS)}, seeds {SEEDS}")
    p.add_argument('--fu-methods', nargs='+', choices=FU_METHODS + L2_FU_METHODS,
                   help=f"with --fu, the methods to train on every composition trained (default: {', '.join(FU_METHODS)} on A and B; "
                        f"{', '.join(HOLDOUT_FU_METHODS)} on the held-out ones)")
    p.add_argument('--fu-name', help="with --fu, the f_u tables' name (default: fu_<the stand-ins' folder>; _holdout added for C and D)")
    p.add_argument('--fu-holdout', action='store_true', help=f"with --fu, also on the held-out compositions {', '.join(HOLDOUT)}: {', '.join(HOLDOUT_FU_METHODS)}")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for epochs, size, ssl in ((30, SIZE, 0.), (a.epochs, a.size, a.ssl)):
        out = variant_dir(epochs, size, ssl)
        for comp, standin in SCORED:
            fn = make_standin(standin, out, epochs=epochs, threads=a.threads, size=size, ssl=ssl)
            acc = json.loads(fn.with_suffix('.json').read_text())['valid_accuracy']
            feats = standin_features(comp, fn, size)
            rows += [dict(standin=standin, standin_epochs=epochs, standin_size=size, standin_ssl=ssl, standin_accuracy=acc, **r)
                     for s in SEEDS for r in score(comp, feats, s)]
    df = pd.DataFrame(rows)
    name = 'standin_quality' + ('' if a.size == SIZE else f'_s{a.size}') + (f'_ssl{a.ssl:g}_e{a.epochs}' if a.ssl else '')
    save(df, name)
    pd.set_option('display.width', 250)
    print(df.groupby(['comp', 'standin', 'standin_epochs', 'standin_size', 'standin_ssl', 'clusterer']).median(numeric_only=True).drop(columns='seed').round(3).to_string())
    if not a.fu: return
    from discovery import per_seed_diff
    fu_dir = variant_dir(a.epochs, a.size, a.ssl)  # the stand-ins f_u is fine-tuned from
    tag = fu_dir.name
    fu_comps = {**{comp: a.fu_methods or FU_METHODS for comp in COMPOSITIONS},
                **({comp: a.fu_methods or HOLDOUT_FU_METHODS for comp in HOLDOUT} if a.fu_holdout else {})}
    fu = pd.DataFrame([r for comp, methods in fu_comps.items() for seed in SEEDS
                       for r in fu_rows(comp, seed, standin_path(composition(comp)['standin'], fu_dir), a.size, tag,
                                        a.threads, methods)])
    name = a.fu_name or f'fu_{tag}'.replace('-', '_')
    save(fu[fu.comp.isin(list(COMPOSITIONS))], name)
    if a.fu_holdout: save(fu[fu.comp.isin(list(HOLDOUT))], f'{name}_holdout')
    print(f"\nf_u from the stand-ins {tag}, median over seeds {SEEDS}")
    print(fu.groupby(['comp', 'method'])[['mean_roc_auc', 'worst_subclass_recall', 'accuracy', 'train_s']].median().round(3).to_string())
    for metric in ('worst_subclass_recall', 'mean_roc_auc'):
        diff = per_seed_diff(fu, metric)
        print(f"\n{metric} minus random undersampling's, per seed\n" + diff.round(3).to_string() +
              "\nmedian\n" + diff.groupby('comp').median().round(3).to_string())

if __name__ == '__main__': main()
