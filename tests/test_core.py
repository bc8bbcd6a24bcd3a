"Integration tests of the core on real data: scikit-learn's digits, through the resampler interface."
import numpy as np, pytest
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score
from fastai_subclass.core import find_subclasses, select_samples
from fastai_subclass.sampler import SubclassUndersampler

@pytest.fixture(scope='module')
def digits(): return load_digits(return_X_y=True)

def test_superclass_splits_into_its_digits(digits):
    X, y = digits
    sel = np.isin(y, [2, 3, 4, 5])
    sc = find_subclasses(X[sel], seed=0)
    assert sc.k == 4
    assert adjusted_rand_score(y[sel], sc.labels) >= 0.85

def test_resampler_keeps_every_digit_of_the_majority(digits):
    X, y = digits
    # "many" = digits 0-4 (about 900 items), "few" = 100 items of digit 9
    few = np.flatnonzero(y == 9)[:100]
    many = np.flatnonzero(y < 5)
    Xi, yi, sub = X[np.r_[many, few]], np.r_[np.zeros(len(many), int), np.ones(100, int)], y[np.r_[many, few]]
    rus = SubclassUndersampler(strategy='closest', random_state=1)
    Xr, yr = rus.fit_resample(Xi, yi)
    assert np.bincount(yr).tolist() == [100, 100]
    kept_digits = np.bincount(sub[rus.sample_indices_][yr == 0], minlength=5)
    assert rus.subclasses_[0].k == 5 and kept_digits.min() >= 18, kept_digits
    # the same seed gives the same rows
    again = SubclassUndersampler(strategy='closest', random_state=1)
    again.fit_resample(Xi, yi)
    again = again.sample_indices_
    assert (again == rus.sample_indices_).all()

def test_large_class_takes_the_fast_path_reproducibly():
    "From `UMAP_SMALL` items up: exact neighbour graph and PCA start; the same seed gives the same map, twice in one process"
    from contextlib import contextmanager
    from sklearn.datasets import make_blobs
    from fastai_subclass.core import UMAP_SMALL
    sizes = [2000, 1400, 800, 400]
    X, groups = make_blobs(sizes, n_features=64, cluster_std=3.0, center_box=(-6, 6), random_state=0)
    assert len(X) >= UMAP_SMALL
    steps = []
    @contextmanager
    def note(step): steps.append(step); yield
    a = find_subclasses(X.astype(np.float32), seed=0, timer=note)
    b = find_subclasses(X.astype(np.float32), seed=0)
    assert 'knn' in steps
    assert (a.embedding == b.embedding).all() and (a.labels == b.labels).all()
    assert a.k == 4 and adjusted_rand_score(groups, a.labels) >= 0.9
    assert (select_samples(a, 400, 'random', seed=0) == select_samples(b, 400, 'random', seed=0)).all()
