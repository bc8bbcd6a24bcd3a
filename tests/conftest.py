"Fixtures shared by the test modules"
import numba, pytest, torch

@pytest.fixture(scope='module')
def one_thread():
    "One intra-op thread for torch and numba for a whole module, restored after it"
    # On a small shared machine two intra-op threads that compete with other processes run about 10x slower than one.
    # numba first: starting its OpenMP layer (UMAP's first run does) sets the thread count of the libgomp it shares
    # with torch to numba's own, so torch's setting would not survive the first selection.
    n, nb = torch.get_num_threads(), numba.get_num_threads()
    numba.set_num_threads(1); torch.set_num_threads(1)
    yield
    numba.set_num_threads(nb); torch.set_num_threads(n)
