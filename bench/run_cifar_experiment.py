"""The real comparison of issue #4: every method on an imbalanced CIFAR-10 setup, several seeds, CPU.

The majority class `vehicle` is made of four CIFAR-10 classes in unequal parts (its real subclasses); the minority
classes are three other CIFAR-10 classes. The test split is CIFAR-10 test images of the same classes, with every
vehicle subclass equally represented. ResNet18 from random weights (offline), 32 px, every method at the baseline's
number of optimizer steps (equal_steps). Resumes: rerun the same command after an interruption.

    python bench/run_cifar_experiment.py                  # the experiment of nbs/10_cifar_experiment.ipynb
    python bench/run_cifar_experiment.py --seeds 0 --epochs 1 --out bench/out/cifar_quick   # a quick check

It writes runs/, items/, models/, runs.csv, results.csv, results.md, scores.png, subclasses.csv (the true
subclasses of the vehicle items each run trained on), clusters.csv (the true subclasses in each of f0's clusters) to --out, prints the table, and with --publish copies the
small files (not the models) to nbs/cifar_experiment/ for the docs notebook.
"""
import argparse, json, os, shutil, sys, time
from pathlib import Path
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
VEHICLE = {'airplane': 240, 'automobile': 160, 'ship': 120, 'truck': 80}  # the majority class and its subclasses
MINORITY = {'bird': 100, 'cat': 100, 'frog': 100}
TEST_PER_VEHICLE, TEST_PER_MINORITY = 100, 400  # 400 test images per label, every vehicle subclass equally

def cifar_items(data:Path) -> pd.DataFrame:
    "Item table (path, label, is_valid, subclass): the first images of each CIFAR class, vehicles grouped into one label"
    rows = []
    for split, is_valid in (('train', False), ('test', True)):
        for cls, m in {**VEHICLE, **MINORITY}.items():
            if is_valid: m = TEST_PER_VEHICLE if cls in VEHICLE else TEST_PER_MINORITY
            files = sorted((data/split/cls).glob('*.jpg'))
            if len(files) < m: raise FileNotFoundError(f"{data/split/cls} holds {len(files)} images, {m} are needed")
            rows += [dict(path=f, label='vehicle' if cls in VEHICLE else cls, is_valid=is_valid, subclass=cls) for f in files[:m]]
    return pd.DataFrame(rows)

def subclass_composition(out:Path, runs:pd.DataFrame) -> pd.DataFrame:
    "For every run, how many of its training items of each true vehicle subclass (from the item lists it recorded)"
    rows = []
    for _, r in runs.iterrows():
        name = f"{r['method']}-seed{r['seed']}" + (f"-draw{r['draw']}" if r['method'] == 'random' else '')
        names = (out/'items'/f'{name}.txt').read_text().split()
        # item names are relative to the common folder of the training images: <class>/NNNN.jpg
        subs = pd.Series([Path(n).parts[-2] for n in names]).value_counts()
        rows.append(dict(method=r['method'], seed=r['seed'], draw=r['draw'], **{c: int(subs.get(c, 0)) for c in VEHICLE}))
    return pd.DataFrame(rows)

def cluster_composition(out:Path, items:pd.DataFrame, runs:pd.DataFrame) -> pd.DataFrame:
    "For every seed, the true subclasses of the vehicle items in each of f0's clusters (one clustering per seed)"
    rows = []
    for seed in sorted(runs.loc[runs.method.str.startswith('subclass_'), 'seed'].unique()):
        fn = next(iter(sorted((out/'items').glob(f'subclass_*-seed{seed}-selection.csv'))))
        sel = pd.read_csv(fn).dropna(subset=['cluster'])
        # the selection's item keys are the row labels of the item table
        sel['subclass'] = items.loc[sel['item'].astype(int), 'subclass'].to_numpy()
        tab = pd.crosstab(sel['cluster'].astype(int), sel['subclass']).reindex(columns=list(VEHICLE), fill_value=0)
        kept = sel.groupby('cluster')['kept'].sum()
        for c, r in tab.iterrows():
            rows.append(dict(seed=seed, layer=sel['layer'].iloc[0], cluster=c, items=int(r.sum()), kept_closest=int(kept[c]), **r.to_dict()))
    return pd.DataFrame(rows)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=str(ROOT.parent/'shared'/'data'/'cifar10'))
    p.add_argument('--out', default=str(ROOT/'bench'/'out'/'cifar_experiment'))
    p.add_argument('--methods', nargs='+', default=['baseline', 'random', 'oversample_x6', 'weighted_loss',
                                                    'subclass_closest', 'subclass_farthest', 'subclass_random'])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--draws', type=int, default=2)
    p.add_argument('--n', type=int, default=100, help='vehicle items to keep (the size of each minority class)')
    p.add_argument('--epochs', type=int, default=4, help="the baseline's epochs; the others train for as many steps")
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--threads', type=int, default=1, help="torch threads: on a machine shared with other jobs one thread is many "
                   "times faster than two (no spinning OpenMP workers); raise it on an idle machine")
    p.add_argument('--publish', action='store_true', help='copy the results to nbs/cifar_experiment/')
    a = p.parse_args(argv)
    import torch; torch.set_num_threads(a.threads)
    from fastai_subclass.experiments import run_experiment
    items = cifar_items(Path(a.data))
    print(f"train: {items[~items.is_valid].subclass.value_counts().to_dict()}\ntest: {items[items.is_valid].label.value_counts().to_dict()}")
    recipe = dict(arch='resnet18', pretrained=False, size=32, bs=a.bs, lr=a.lr, epochs=a.epochs, freeze_epochs=0, aug=True, flip_vert=False)
    t = time.time()
    res = run_experiment(items[['path', 'label', 'is_valid']], a.methods, a.seeds, n={'vehicle': a.n}, out_dir=a.out,
                         recipe=recipe, draws=a.draws, select_kwargs=dict(ks=range(2, 10)))
    wall = time.time() - t
    out = Path(a.out)
    comp = subclass_composition(out, res.runs)
    comp.to_csv(out/'subclasses.csv', index=False)
    if any(m.startswith('subclass_') for m in a.methods): cluster_composition(out, items, res.runs).to_csv(out/'clusters.csv', index=False)
    # every call of this out_dir, so that a resumed call keeps the wall time of the calls that trained
    fn = out/'meta.json'
    meta = json.loads(fn.read_text()) if fn.exists() else {}
    call = dict(command='python bench/run_cifar_experiment.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
                wall_s=round(wall), trained=res.ran, read_back=res.loaded, torch_threads=a.threads, cpus=os.cpu_count(),
                finished=time.strftime('%Y-%m-%d %H:%M'))
    meta.update(recipe=recipe, n=a.n, draws=a.draws, seeds=a.seeds, train=items[~items.is_valid].subclass.value_counts().to_dict(),
                test=items[items.is_valid].label.value_counts().to_dict(), calls=meta.get('calls', []) + [call])
    fn.write_text(json.dumps(meta, indent=1))
    print(res.markdown(['mean_roc_auc', 'log_loss', 'balanced_accuracy', 'accuracy']))
    print(res.markdown([c for c in res.runs if c.startswith('recall_')]))
    print(comp.groupby('method', sort=False)[list(VEHICLE)].median().to_string())
    print(f"wall time {wall:.0f} s ({res.ran} runs trained, {res.loaded} read back)")
    if a.publish:
        dest = ROOT/'nbs'/'cifar_experiment'
        dest.mkdir(exist_ok=True)
        for f in ('runs.csv', 'results.csv', 'scores.png', 'subclasses.csv', 'clusters.csv', 'meta.json'):
            if (out/f).exists(): shutil.copy(out/f, dest/f)
        print(f"copied to {dest}")

if __name__ == '__main__': main()
