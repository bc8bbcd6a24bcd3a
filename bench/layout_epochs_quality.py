"""How many UMAP layout epochs the clustering needs: adjusted Rand index of `find_subclasses`' k-means against known groups, per epoch count.

The layout is the one step of `find_subclasses` that runs on one core when seeded, so its epoch count
(`core.layout_epochs`: `LAYOUT_BUDGET` items x epochs, at least `MIN_EPOCHS`) sets the speed of large classes. This
script measures what fewer epochs cost: `find_subclasses(..., n_epochs=e)` for every epoch count `e`, and the
time of its layout step.

Data: `digits` = scikit-learn's digits 0-4 (901 images of 64 pixels), each repeated `--reps` times with Gaussian noise
(sd 2 grey levels: neighbouring copies of one image overlap, and digits touch); `blobs` = the ReLU features of six
Gaussian groups that `bench_core.py` times (`--spread` 0.7: groups that partly merge).

    .venv/bin/python bench/layout_epochs_quality.py                                  # digits x55 (49.5k items)
    .venv/bin/python bench/layout_epochs_quality.py --reps 25 --epochs 160 200       # 22.5k items
    .venv/bin/python bench/layout_epochs_quality.py --data blobs --n 50000 --spread 0.7
"""
import argparse, os, sys, time
from contextlib import contextmanager
import numpy as np

def digits_data(reps, seed, noise=2.0):
    "Digits 0-4, each image `reps` times with Gaussian noise of sd `noise`, and their digit"
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X, y = X[y < 5], y[y < 5]
    rng = np.random.default_rng(seed)
    return (np.repeat(X, reps, 0) + rng.normal(0, noise, (len(X) * reps, X.shape[1]))).astype(np.float32), np.repeat(y, reps)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', choices=('digits', 'blobs'), default='digits')
    p.add_argument('--reps', type=int, default=55, help='digits: copies of every image (55: 49,555 items)')
    p.add_argument('--n', type=int, default=50_000, help='blobs: items')
    p.add_argument('--spread', type=float, default=0.7, help='blobs: spread of the group centres')
    p.add_argument('--epochs', type=int, nargs='+', default=[60, 80, 100, 200])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1], help='data and UMAP seeds (one run each)')
    args = p.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from sklearn.metrics import adjusted_rand_score
    from fastai_subclass import core
    print(f"default epochs for this size: {core.layout_epochs(args.n if args.data == 'blobs' else 901 * args.reps)}")
    for seed in args.seeds:
        if args.data == 'digits': x, groups = digits_data(args.reps, seed)
        else:
            from bench_core import make_features
            x, groups = make_features(args.n, seed=seed, spread=args.spread)
        for ep in args.epochs:
            secs = {}
            @contextmanager
            def timer(step):
                t = time.perf_counter(); yield; secs[step] = time.perf_counter() - t
            sc = core.find_subclasses(x, seed=seed, timer=timer, n_epochs=ep)
            print(f"{args.data} n={len(x)} seed={seed} epochs={ep:4d}: layout {secs['umap']:5.1f} s, k={sc.k}, "
                  f"silhouette {sc.silhouette:.3f}, ARI {adjusted_rand_score(groups, sc.labels):.3f}", flush=True)

if __name__ == '__main__': main()
