"""Run notebooks in place and keep their outputs (tables, pictures): the notebooks are the docs, as fastai's are.

    .venv/bin/python .ci/execute_nbs.py nbs/00_core.ipynb nbs/02_select.ipynb

Each notebook runs in a fresh kernel-less shell (execnb, as `nbdev_test` runs them) from its own folder; a cell that
raises stops that notebook, which is then left unchanged, and the script exits 1. Cells marked `#| notest` or `#| slow`
still run here: their outputs are part of the docs; cells marked `#| eval: false` (a benchmark command) are skipped, as
nbdev_test and the docs build skip them. Outputs are written with nbdev's clean step, which keeps them.
"""
import os, sys, time
from pathlib import Path

def _no_eval(cell) -> bool:
    "True for a cell marked `#| eval: false`, which execnb then skips"
    return cell.cell_type == 'code' and any(l.replace(' ', '').lower() == '#|eval:false' for l in cell.source.splitlines()[:5])

def execute(fn:Path) -> bool:
    "Run `fn` in place from its own folder; True if every cell ran"
    from execnb.shell import CaptureShell
    from execnb.nbio import read_nb, write_nb
    from nbdev.clean import clean_nb
    import fastprogress.fastprogress as fp, warnings
    # Progress bars redrawn as text (there is no notebook front end here) would fill the docs with bar after bar; the
    # epoch tables fastai writes under them are kept. Torch's deprecation notice about torch.jit is not ours to show.
    fp.printing = lambda: False
    warnings.filterwarnings('ignore', message='.*torch.jit.script.*')
    nb, cwd = read_nb(fn), os.getcwd()
    os.chdir(fn.parent)
    t = time.time()
    try: CaptureShell(mpl_format='retina').run_all(nb, exc_stop=True, preproc=_no_eval)
    except Exception as e:
        print(f"{fn}: FAILED after {time.time() - t:.0f}s: {type(e).__name__}: {e}", flush=True)
        return False
    finally: os.chdir(cwd)
    for cell in nb.cells:  # what is left of the silenced bars: their blocks and carriage returns
        for o in cell.get('outputs', []):
            if o.get('output_type') == 'stream': o['text'] = ''.join(o['text']).replace('\u2588', '').replace('\r', '')
    clean_nb(nb)
    write_nb(nb, fn)
    print(f"{fn}: ran in {time.time() - t:.0f}s", flush=True)
    return True

if __name__ == '__main__':
    os.environ.setdefault('MPLBACKEND', 'Agg')
    fns = [Path(a).resolve() for a in sys.argv[1:]]
    if not fns: sys.exit(__doc__)
    ok = [execute(f) for f in fns]
    sys.exit(0 if all(ok) else 1)
