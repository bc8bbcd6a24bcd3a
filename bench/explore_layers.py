"""Exploration (not the benchmark): does an earlier layer of the stand-in hold subclasses its last layer does not?

The majority class of every composition scored by bench/discovery_standin_quality.py, read at 64 px through the 64 px
stand-ins (bench/out/standin-s64-e30) before any fine-tuning, at the output of the torchvision ResNet18's layer2,
layer3 and layer4, each averaged over its positions (128, 256 and 512 values). Each is clustered by `find_subclasses`
with both clusterers, seeds 0-2: the chosen k, ARI against the true subclasses, the silhouette, and the coverage of
`spread` (per cluster) and `flatten` (no clusters). Medians over the seeds (ARI range in brackets); the table goes to
nbs/discovery/explore_layers.csv.

    python bench/explore_layers.py      # about 3 min on 2 cores once the 64 px stand-ins are cached
"""
import sys, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch, torchvision
from PIL import Image
sys.path.insert(0, str(Path(__file__).parent))
from discovery_common import *
from discovery import coverage, save, SEEDS
from discovery_standin_quality import SCORED, variant_dir
from standin import normalize, standin_path

TAPS = ('layer2', 'layer3', 'layer4')
SIZE_READ = 64

def tap_features(comp:str, weights) -> dict:
    "{tap: N x channels}: the majority class's training items through the stand-in `weights`, each tap averaged over its positions"
    items = composition_items(comp)
    maj = items[~items.is_valid & (items.label == MAJORITY)]
    x = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert('RGB')) for f in maj.path])).permute(0, 3, 1, 2)
    model = torchvision.models.resnet18(num_classes=1000)
    model.load_state_dict(torch.load(weights, map_location='cpu')); model.eval()
    outs = {t: [] for t in TAPS}
    for t in TAPS: getattr(model, t).register_forward_hook(lambda m, i, o, t=t: outs[t].append(o.mean((2, 3))))
    with torch.no_grad():
        for s in range(0, len(x), 100): model(normalize(x[s:s + 100], SIZE_READ))
    return {**{t: torch.cat(v).numpy() for t, v in outs.items()}, 'subclass': maj.subclass.to_numpy().astype(str)}

def main():
    from sklearn.metrics import adjusted_rand_score
    from fastai_subclass.core import find_subclasses, select_samples, CLUSTERERS
    torch.set_num_threads(2); warnings.simplefilter('ignore')
    rows = []
    for comp, standin in SCORED:
        feats = tap_features(comp, standin_path(standin, variant_dir(30, SIZE_READ)))
        truth, n = feats['subclass'], composition(comp)['n']
        for tap in TAPS:
            for clusterer in CLUSTERERS:
                for seed in SEEDS:
                    sc = find_subclasses(feats[tap], seed=seed, clusterer=clusterer)
                    rows.append(dict(comp=comp, standin=standin, tap=tap, clusterer=clusterer, seed=seed, k=sc.k, silhouette=sc.silhouette,
                                     ari=adjusted_rand_score(truth, sc.labels),
                                     **{f'coverage_{s}': coverage(select_samples(sc, n, s, seed=seed), truth, n) for s in ('spread', 'flatten')}))
    df = pd.DataFrame(rows)
    save(df, 'explore_layers')
    g = df.groupby(['comp', 'standin', 'tap', 'clusterer'])
    out = g.median(numeric_only=True).drop(columns='seed')
    out['ari_range'] = g.ari.min().round(2).astype(str) + '-' + g.ari.max().round(2).astype(str)
    pd.set_option('display.width', 200)
    print(out.round(2).to_string())

if __name__ == '__main__': main()
