"Fast tests of the figures, on a hand-made `Subclasses` (no UMAP) and the shipped sample images."
import io
from pathlib import Path
import numpy as np, pytest
from matplotlib.figure import Figure
from PIL import Image
import fastai_subclass
from fastai_subclass.core import Subclasses, select_samples
from fastai_subclass.show import *

SAMPLE = Path(fastai_subclass.__file__).parent/'data'/'sample'/'train'

@pytest.fixture(scope='module')
def sc():
    "Three blobs of 50, 30 and 20 points in a 2-D map"
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    centers = np.array([[0., 0], [5, 5], [-5, 5]], dtype=np.float32)
    emb = (centers[labels] + rng.normal(size=(100, 2))).astype(np.float32)
    return Subclasses(labels, 3, centers, emb, {2: 0.4, 3: 0.6, 4: 0.5})

def _gid(ax, gid): return next(c for c in ax.collections if c.get_gid() == gid)

def test_map_draws_every_item_and_every_kept_one(sc):
    kept = select_samples(sc, 30)
    fig = show_subclasses(sc, kept)
    assert isinstance(fig, Figure)
    ax, = fig.axes
    assert len(_gid(ax, 'points').get_offsets()) == 100
    assert np.allclose(_gid(ax, 'kept').get_offsets(), sc.embedding[kept])
    assert len(_gid(ax, 'centres').get_offsets()) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == ['0: 50, 10 kept', '1: 30, 10 kept', '2: 20, 10 kept']

def test_map_rejects_foreign_kept(sc):
    with pytest.raises(IndexError, match=r'\[100\] outside 0..99'): show_subclasses(sc, [3, 100])

def test_grid_has_a_row_per_cluster_and_frames_kept(sc):
    files = sorted((SAMPLE/'vehicle').glob('*.jpg'))[:100]
    kept = np.zeros(100, bool); kept[[0, 1, 60, 99]] = True
    fig = show_cluster_grid(files, sc.labels, kept, n_per_cluster=4)
    assert len(fig.axes) == 3 * 4
    shown = [ax for ax in fig.axes if ax.get_gid()]
    assert len(shown) == 12 and all(len(ax.images) == 1 for ax in shown)
    framed = {int(ax.get_gid()[4:]) for ax in shown if ax.spines['top'].get_visible()}
    assert framed == {0, 1, 60, 99}
    # kept first in each row
    assert [ax.spines['top'].get_visible() for ax in fig.axes[:4]] == [True, True, False, False]
    with pytest.raises(ValueError, match='items has 99 entries but labels has 100'): show_cluster_grid(files[:99], sc.labels)

def test_silhouettes_one_line_per_layer_and_the_chosen_star(sc):
    fig = show_silhouettes({'layer3': sc, 'layer4': {2: 0.3, 3: 0.2}}, chosen=('layer4', 2))
    ax, = fig.axes
    assert len(ax.lines) == 2
    assert np.allclose(_gid(ax, 'chosen').get_offsets(), [[2, 0.3]])
    with pytest.raises(ValueError, match="'layer5' is not among the layers scored"): show_silhouettes({'layer3': sc}, chosen='layer5')
    with pytest.raises(ValueError, match='k=7 was not scored'): show_silhouettes(sc.scores, chosen=7)

def test_class_counts_bars_and_numbers():
    ax, = show_class_counts({'a': 100, 'b': 10}, {'a': 10, 'b': 10}).axes
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.texts] == ['100', '10', '10', '10']

def test_save_fig_writes_png(sc, tmp_path):
    p = save_fig(show_subclasses(sc), tmp_path/'sub'/'map')
    assert p == tmp_path/'sub'/'map.png' and p.read_bytes()[:4] == b'\x89PNG'
    assert Image.open(p).size[0] > 300
    assert save_fig(show_subclasses(sc), io.BytesIO()).getvalue()[:4] == b'\x89PNG'
