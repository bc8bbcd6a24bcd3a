"""Time `find_subclasses` + `select_samples` step by step on synthetic 2048-d float32 features.

Every size runs in its own fresh Python process (so the first call pays the imports and the numba compilation a
user pays), then calls again in that process (warm). Per step it prints wall and CPU seconds, the seconds spent
compiling numba code, and the peak extra memory over the memory in use when the call started (the input matrix is
already there, so this is what the call adds):

- `rss`: peak resident set size (Linux `/proc/self/status` VmHWM, reset at every step through
  `/proc/self/clear_refs`). It sees everything (numpy, numba, BLAS, LLVM), but also memory freed by Python and not
  yet given back to the system.
- `--tracemalloc`: also the peak of numpy/Python allocations (`tracemalloc`); slows the Python-heavy steps.

The steps are reported by `find_subclasses` itself through its `timer` argument, so this measures the very code
users run. The machine load average is printed before and after every size: other processes make times noisy.

    .venv/bin/python bench/bench_core.py                       # 1k, 10k and 50k rows
    .venv/bin/python bench/bench_core.py --sizes 50000         # one size
    .venv/bin/python bench/bench_core.py --cold-cache          # empty numba cache: a first run ever
    .venv/bin/python bench/bench_core.py --umap n_epochs=100   # try a UMAP setting
    .venv/bin/python bench/bench_core.py --baseline            # also the plain scikit-learn + umap-learn chain
"""
import argparse, hashlib, json, os, subprocess, sys, tempfile, time
from contextlib import contextmanager

STEPS = ('check', 'standardize', 'pca', 'knn', 'umap', 'kmeans', 'silhouette', 'select')
MiB = 2**20

def make_features(n, d=2048, seed=0, spread=1.0, latent=32, props=(.35, .25, .15, .12, .08, .05)):
    "`n` ReLU features in `d` dims (float32) from Gaussian groups of unequal size in a `latent`-dim space, and the groups"
    # group centres ~ N(0, spread^2) per latent dim, items ~ N(centre, 1): spread 1.0 gives distinct groups that
    # k-means finds back (ARI ~1), 0.7 groups that partly merge at 50k items, 1.5 groups far apart
    import numpy as np
    rng = np.random.default_rng(seed)
    sizes = (np.array(props) * n).astype(int); sizes[0] += n - sizes.sum()
    groups = rng.permutation(np.repeat(np.arange(len(props)), sizes))
    centers = rng.normal(0, spread, (len(props), latent))
    w = (rng.normal(size=(latent, d)) / np.sqrt(latent)).astype(np.float32)
    z = (centers[groups] + rng.normal(size=(n, latent))).astype(np.float32)
    x = np.empty((n, d), np.float32)
    for i in range(0, n, 4096):  # in blocks, so that no full-size float64 or temporary array is made
        blk = z[i:i+4096] @ w
        blk += 0.5 * rng.standard_normal(blk.shape, dtype=np.float32)
        x[i:i+4096] = np.maximum(blk, 0)
    return x, groups

def _proc_status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key): return int(line.split()[1]) * 1024
    return 0

def _reset_peak_rss():
    "Reset VmHWM to the current RSS; False where the kernel does not allow it"
    try:
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
        return True
    except OSError: return False

class StepTimer:
    "A `timer` for `find_subclasses`: wall, CPU and numba-compile seconds, peak extra RSS (and tracemalloc) per step"
    def __init__(self, use_tracemalloc=False):
        self.use_tm, self.steps, self.compile_s, self._depth, self._starts = use_tracemalloc, {}, 0., 0, {}
        from numba.core import event
        timer = self
        class _Compiles(event.Listener):
            # only outermost compilations: inner ones are part of their time
            def on_start(self, ev):
                timer._depth += 1
                if timer._depth == 1: timer._t_compile = time.perf_counter()
            def on_end(self, ev):
                timer._depth -= 1
                if timer._depth == 0: timer.compile_s += time.perf_counter() - timer._t_compile
        event.register('numba:compile', _Compiles())

    def start_call(self):
        import tracemalloc
        self.steps, self.rss0 = {}, _proc_status('VmRSS')
        if self.use_tm: self.tm0 = tracemalloc.get_traced_memory()[0]

    @contextmanager
    def __call__(self, name):
        import tracemalloc
        can_reset = _reset_peak_rss()
        if self.use_tm: tracemalloc.reset_peak()
        c0, w0, cpu0 = self.compile_s, time.perf_counter(), time.process_time()
        try: yield
        finally:
            rec = dict(wall=time.perf_counter() - w0, cpu=time.process_time() - cpu0, compile=self.compile_s - c0,
                       rss=(_proc_status('VmHWM') if can_reset else _proc_status('VmRSS')) - self.rss0)
            if self.use_tm: rec['tm'] = tracemalloc.get_traced_memory()[1] - self.tm0
            self.steps[name] = rec

def baseline_subclasses(x, seed=42, timer=None, ks=range(2, 10)):
    "The reference: a plain scikit-learn + umap-learn chain (seeded UMAP, k-means n_init=10, silhouette on a 10k sample), timed like `find_subclasses`"
    # Not the library's code path: only here to compare against, in the same process and under the same load.
    import numpy as np, warnings, umap
    from sklearn.preprocessing import StandardScaler
    from sklearn.decomposition import PCA
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from fastai_subclass.core import Subclasses
    with timer('standardize'): xs = StandardScaler().fit_transform(x)
    with timer('pca'): xp = PCA(50, random_state=seed).fit_transform(xs)
    with timer('umap'), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        emb = umap.UMAP(random_state=seed).fit_transform(xp)
    with timer('kmeans'): fits = {k: KMeans(k, n_init=10, random_state=seed).fit(emb) for k in ks}
    with timer('silhouette'):
        scores = {k: silhouette_score(emb, f.labels_, sample_size=min(10_000, len(x)), random_state=seed) for k, f in fits.items()}
    best = max(scores, key=scores.get)
    return Subclasses(fits[best].labels_.astype(np.int64), best, fits[best].cluster_centers_.astype(np.float32), emb, scores)

def worker(n, d, spread, calls, use_tm, umap_kw, baseline=False):
    "Run in a fresh process: make the data, then call `find_subclasses` (or the baseline) + `select_samples` `calls` times"
    import numpy as np
    load0 = os.getloadavg()
    t = time.perf_counter(); x, groups = make_features(n, d, spread=spread); t_data = time.perf_counter() - t
    if use_tm:
        import tracemalloc; tracemalloc.start()
    t = time.perf_counter()
    from fastai_subclass.core import find_subclasses, select_samples
    from sklearn.metrics import adjusted_rand_score
    t_import = time.perf_counter() - t
    timer, out = StepTimer(use_tm), []
    for call in range(calls):
        timer.start_call()
        w0, c0 = time.perf_counter(), time.process_time()
        if baseline: sc = baseline_subclasses(x, seed=42, timer=timer)
        else: sc = find_subclasses(x, seed=42, timer=timer, **umap_kw)
        with timer('select'): picks = select_samples(sc, len(x) // 5, 'closest', seed=42)
        total = dict(wall=time.perf_counter() - w0, cpu=time.process_time() - c0, compile=sum(s['compile'] for s in timer.steps.values()),
                     rss=max(s['rss'] for s in timer.steps.values()))
        if use_tm: total['tm'] = max(s['tm'] for s in timer.steps.values())
        out.append(dict(call=call + 1, steps=timer.steps, total=total, k=int(sc.k),
                        ari=float(adjusted_rand_score(groups, sc.labels)), picks=hashlib.md5(picks.tobytes()).hexdigest()[:12]))
    return dict(n=n, d=d, spread=spread, input_bytes=x.nbytes, data_s=t_data, import_s=t_import, load_before=load0,
                load_after=os.getloadavg(), umap_kw=umap_kw, baseline=baseline, calls=out)

def _fmt_row(label, rec, input_bytes, use_tm):
    mem = f"{rec['rss']/MiB:8.0f} {rec['rss']/input_bytes:5.2f}x"
    if use_tm: mem += f" {rec['tm']/MiB:8.0f}"
    return f"  {label:<12}{rec['wall']:8.2f}{rec['cpu']:8.2f}{rec['compile']:9.2f} {mem}"

def print_report(res, use_tm):
    n, inp = res['n'], res['input_bytes']
    what = 'BASELINE plain scikit-learn + umap-learn chain' if res.get('baseline') else f"find_subclasses, UMAP settings {res['umap_kw'] or 'default'}"
    print(f"\n{n} x {res['d']} float32 ({inp/MiB:.0f} MiB), group spread {res['spread']}, {what}; "
          f"load average before {tuple(round(v, 2) for v in res['load_before'])}, after {tuple(round(v, 2) for v in res['load_after'])}")
    print(f"  data made in {res['data_s']:.1f} s; `import fastai_subclass.core` {res['import_s']:.1f} s (not in the call times)")
    for c in res['calls']:
        print(f"  call {c['call']} ({'fresh process' if c['call'] == 1 else 'same process'}): k={c['k']}, "
              f"ARI vs true groups {c['ari']:.3f}")
        hdr = f"  {'step':<12}{'wall s':>8}{'cpu s':>8}{'numba s':>9} {'rss MiB':>8} {'/input':>6}"
        print(hdr + (f" {'tm MiB':>8}" if use_tm else ''))
        for name in STEPS:
            if name in c['steps']: print(_fmt_row(name, c['steps'][name], inp, use_tm))
        print(_fmt_row('total', c['total'], inp, use_tm))
    if len(res['calls']) > 1:
        same = len({c['picks'] for c in res['calls']}) == 1
        print(f"  same picks in every call: {same} ({res['calls'][0]['picks']})")

def _value(v):
    "A command-line value as JSON where it parses (numbers, lists), else as the string"
    try: return json.loads(v)
    except ValueError: return v

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[1000, 10_000, 50_000])
    p.add_argument('--dim', type=int, default=2048)
    p.add_argument('--spread', type=float, default=1.0, help="spread of the group centres: 1.0 distinct groups, 0.7 partly merged, 1.5 far apart")
    p.add_argument('--calls', type=int, default=2, help='calls per process: the first is the fresh one')
    p.add_argument('--tracemalloc', action='store_true', help='also report the peak of numpy/Python allocations')
    p.add_argument('--cold-cache', action='store_true', help='use an empty NUMBA_CACHE_DIR: what a first run ever pays')
    p.add_argument('--umap', nargs='*', default=[], metavar='KEY=VALUE', help='UMAP settings to pass to find_subclasses')
    p.add_argument('--baseline', action='store_true', help='also time the plain scikit-learn + umap-learn chain, in its own fresh process')
    p.add_argument('--json', help='also write the results to this file')
    p.add_argument('--worker', type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    umap_kw = {k: _value(v) for k, v in (s.split('=', 1) for s in a.umap)}
    if a.worker:
        print('RESULT ' + json.dumps(worker(a.worker, a.dim, a.spread, a.calls, a.tracemalloc, umap_kw, a.baseline)))
        return
    print(f"{sys.executable} {' '.join(sys.argv)}\n{os.cpu_count()} CPUs; load average now "
          f"{tuple(round(v, 2) for v in os.getloadavg())}")
    env, cold = dict(os.environ), tempfile.TemporaryDirectory(prefix='numba-cold-')
    if a.cold_cache: env['NUMBA_CACHE_DIR'] = cold.name
    results = []
    for n in a.sizes:
        for base in ([False, True] if a.baseline else [False]):
            cmd = [sys.executable, __file__, '--worker', str(n), '--dim', str(a.dim), '--spread', str(a.spread),
                   '--calls', str(a.calls), '--umap', *a.umap]
            if a.tracemalloc: cmd.append('--tracemalloc')
            if base: cmd.append('--baseline')
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = [l for l in r.stdout.splitlines() if l.startswith('RESULT ')]
            if r.returncode or not line: sys.exit(f"size {n} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
            results.append(json.loads(line[-1][7:]))
            print_report(results[-1], a.tracemalloc); sys.stdout.flush()
    if a.json: json.dump(results, open(a.json, 'w'), indent=1)
    cold.cleanup()

if __name__ == '__main__': main()
