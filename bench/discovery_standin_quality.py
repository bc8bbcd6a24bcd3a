"""Does a better stand-in find the subclasses better? The `pretrained` setting of the benchmark with stand-ins trained longer.

    python bench/discovery_standin_quality.py --epochs 90     # trains the two stand-ins for 90 epochs (cached), then scores them

bench/standin.py's stand-ins train 30 epochs (validation accuracy 0.743 / 0.821). Here the same stand-ins trained for
`--epochs` go to bench/out/standin-e<epochs>/, and the majority class of each composition is clustered through each
stand-in's own backbone before any fine-tuning (`subclass_undersample(..., before_training=True)` does this), as the
`pretrained` setting of bench/discovery.py does: for seeds 0-2, the chosen layer's k, ARI, coverage of `closest`,
`spread` and `random`, and the probe ceilings (bench/discovery.py `probe_ceiling`). Prints both stand-ins side by side.
"""
import argparse, json, sys, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *
from discovery import coverage, probe_ceiling, paper_layer, random_coverage, SEEDS
from standin import make_standin, standin_path, OUT as STANDIN_OUT

def standin_features(comp:str, weights) -> dict:
    "{'body', 'pool', 'subclass'}: the majority class's training items through the stand-in `weights`, before any training"
    from fastai.vision.all import resnet18
    from fastai_subclass.train import subclass_learner
    from fastai_subclass.features import extract_features
    items = composition_items(comp)
    train = items[~items.is_valid].reset_index(drop=True)
    maj = train[train.label == MAJORITY]
    learn = subclass_learner(item_dls(items, 0), resnet18, weights_file=weights)
    return {**extract_features(learn, maj, ['body', 'pool'], progress=False), 'subclass': maj.subclass.to_numpy().astype(str)}

def score(comp:str, feats:dict, seed:int) -> dict:
    "The chosen layer's clustering against the true subclasses, as bench/discovery.py scores it"
    from sklearn.metrics import adjusted_rand_score
    from fastai_subclass.core import find_subclasses, select_samples
    truth, n = feats['subclass'], COMPOSITIONS[comp]['n']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        by_layer = {l: find_subclasses(feats[l], seed=seed) for l in ('body', 'pool')}
    layer = paper_layer(by_layer); sc = by_layer[layer]
    return dict(comp=comp, seed=seed, layer=layer, k=sc.k, ari=adjusted_rand_score(truth, sc.labels),
                **{f'coverage_{s}': coverage(select_samples(sc, n, s, seed=seed), truth, n) for s in ('closest', 'spread', 'random')},
                coverage_random_undersampling=random_coverage(truth, n),
                **probe_ceiling(feats[layer], truth, n, seed))

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=90)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for epochs, out in ((30, STANDIN_OUT), (a.epochs, STANDIN_OUT.parent/f'standin-e{a.epochs}')):
        for comp, c in COMPOSITIONS.items():
            fn = make_standin(c['standin'], out, epochs=epochs, threads=a.threads)
            acc = json.loads(fn.with_suffix('.json').read_text())['valid_accuracy']
            feats = standin_features(comp, fn)
            rows += [dict(standin_epochs=epochs, standin_accuracy=acc, **score(comp, feats, s)) for s in SEEDS]
    df = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True); df.to_csv(OUT/'standin_quality.csv', index=False)
    (ROOT/'nbs'/'discovery').mkdir(parents=True, exist_ok=True); df.to_csv(ROOT/'nbs'/'discovery'/'standin_quality.csv', index=False)
    pd.set_option('display.width', 250)
    print(df.groupby(['comp', 'standin_epochs']).median(numeric_only=True).drop(columns='seed').round(3).to_string())

if __name__ == '__main__': main()
