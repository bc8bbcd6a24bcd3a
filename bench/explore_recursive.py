"""Exploration (not the benchmark): recursive subclass discovery on the cached features of bench/discovery_f0.py.

The paper's chain again inside each cluster (depth 1-4, k by silhouette or k = 2, clusters under 40 items not split), the
quota split equally down the tree and drawn at random in each leaf; ARI of the leaves and coverage against the true
subclasses. Measured 2026-11-29 (8.5 min on 2 cores; medians over 3 seeds of each layer and variant, f0's layers and the
stand-in's own body): deeper trees lower the ARI (stand-in f0, A: 0.31-0.62 flat, 0.12-0.43 deeper; B: 0.07-0.35 flat,
0.03-0.18 deeper) and move the coverage little (A: 0.19-0.27 flat, 0.13-0.35 deeper; B: 0.30-0.40 flat, 0.22-0.48
deeper), far from 0.8 everywhere: not kept in the library.

    python bench/explore_recursive.py
"""
import sys, warnings; sys.path.insert(0, str(__import__('pathlib').Path(__file__).parent)); warnings.filterwarnings('ignore')
import numpy as np, pandas as pd
from discovery_common import *
from discovery_f0 import f0_path
from sklearn.metrics import adjusted_rand_score
from fastai_subclass.core import find_subclasses, cluster_quotas, select_samples, Subclasses
def cov(kept, truth, n):
    subs=np.unique(truth); return min((truth[kept]==s).sum()/(n/len(subs)) for s in subs)
def tree(x, idx, depth, maxdepth, minsize, seed, ks):
    if depth>=maxdepth or len(idx)<minsize: return idx
    sc=find_subclasses(x[idx],ks=ks,seed=seed)
    if sc.k<2: return idx
    return [tree(x, idx[sc.labels==c], depth+1, maxdepth, minsize, seed, ks) for c in range(sc.k)]
def size(t): return len(t) if isinstance(t,np.ndarray) else sum(size(c) for c in t)
def leaves(t): return [t] if isinstance(t,np.ndarray) else [l for c in t for l in leaves(c)]
def take(t, q, rng):
    if isinstance(t,np.ndarray): return rng.choice(t,q,replace=False)
    qs=cluster_quotas([size(c) for c in t], q)
    return np.concatenate([take(c,qq,rng) for c,qq in zip(t,qs) if qq>0])
rows=[]
for comp in 'AB':
  n=COMPOSITIONS[comp]['n']
  for setting in ('standin','scratch'):
   for seed in (0,1,2):
    f=dict(np.load(f0_path(comp,setting,seed),allow_pickle=True)); t=f['subclass']
    for l in ('f0_body','f0_pool','f0_linear','start_body'):
      for maxdepth,ks in ((1,range(2,10)),(2,range(2,10)),(3,range(2,10)),(2,(2,)),(3,(2,)),(4,(2,))):
        tr=tree(f[l],np.arange(len(t)),0,maxdepth,40,seed,ks)
        lab=np.zeros(len(t),int)
        for i,lf in enumerate(leaves(tr)): lab[lf]=i
        kept=take(tr,n,np.random.default_rng(seed))
        rows.append(dict(comp=comp,setting=setting,seed=seed,layer=l,variant=f'd{maxdepth} k{"2" if len(ks)==1 else "sil"}',leaves=len(leaves(tr)),
                         ari=adjusted_rand_score(t,lab),cov=cov(kept,t,n)))
    print(comp,setting,seed,flush=True)
d=pd.DataFrame(rows); d.to_csv(OUT/'explore_recursive.csv', index=False)
pd.set_option('display.width',200); pd.set_option('display.max_rows',500)
print(d.groupby(['comp','setting','layer','variant'])[['leaves','ari','cov']].median().round(2).to_string())
