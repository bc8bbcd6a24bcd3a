"SubclassUndersampler against imbalanced-learn's sampler checks and scikit-learn's estimator checks."
import numpy as np, pytest
from sklearn.utils.estimator_checks import parametrize_with_checks as sklearn_checks
from fastai_subclass.sampler import SubclassUndersampler

imblearn_checks = pytest.importorskip('imblearn.utils.estimator_checks').parametrize_with_checks

def _fast(): return SubclassUndersampler(ks=(2, 3), n_pca=10)

# Sparse features are refused with a clear error (`check_dense`), so the sparse-tag checks are not run; the pandas
# one is run (it follows the dataframe tag) and fails on that error, as it should.
IMBLEARN_XFAIL = {'check_samplers_pandas_sparse': 'sparse features are refused on purpose (check_dense)'}

@imblearn_checks([_fast()], expected_failed_checks=lambda est: IMBLEARN_XFAIL)
def test_imblearn_sampler_checks(estimator, check): check(estimator)

@sklearn_checks([_fast()])
def test_sklearn_estimator_checks(estimator, check): check(estimator)

# The cases (item 4): each was silently wrong or a bare traceback before.
X150 = np.random.default_rng(0).normal(size=(150, 4))
y150 = np.repeat([0., 1., 2.], 50)

@pytest.mark.parametrize('y, message', [
    (np.r_[y150[:145], [np.nan] * 5], '5 missing labels'),             # was: 5 rows of every class
    (np.zeros(150), 'only one class'),                                  # was: everything, silently
    (np.linspace(0, 1, 150), 'continuous'),                             # was: 150 classes
    (np.c_[np.eye(3)[y150.astype(int)][:, :2], np.zeros(150)], 'none or several')])  # one-hot rows without a 1
def test_labels_it_cannot_balance_are_clear_errors(y, message):
    with pytest.raises(ValueError, match=message): SubclassUndersampler().fit_resample(X150, y)

@pytest.mark.parametrize('strategy, message', [
    ({0.: 2.7}, '2.7'),                                    # was: truncated to 2
    (0.0, 'sampling_strategy'),                            # was: ZeroDivisionError
    ({0.: 80}, 'only 50|less or equal')])                  # more than the class has
def test_sampling_strategy_values_are_checked(strategy, message):
    y = (y150 > 0).astype(float)
    with pytest.raises(ValueError, match=message): SubclassUndersampler(sampling_strategy=strategy).fit_resample(X150, y)

def test_sparse_features_are_refused():
    from scipy import sparse
    with pytest.raises(TypeError, match='toarray'): SubclassUndersampler().fit_resample(sparse.csr_matrix(X150), y150)

def test_two_class_one_hot_comes_back_one_hot():
    "imbalanced-learn's base would return two one-hot classes as one column"
    X = np.r_[X150, X150[:30] + 5]
    y = np.r_[np.zeros(150, int), np.ones(30, int)]
    Xr, yr = SubclassUndersampler(ks=(2, 3)).fit_resample(X, np.eye(2)[y])
    assert yr.shape == (60, 2) and yr.sum(0).tolist() == [30, 30]
