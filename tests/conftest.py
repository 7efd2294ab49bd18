"""Settings for the whole test session; pytest loads this before any test folder's conftest."""

import os

# OpenMP worker threads (numba's parallel kernels, torch) must sleep between parallel regions,
# not spin: with fewer free cores than threads, spinning makes every small kernel launch cost
# milliseconds (the optimizer tests ran 24x slower after another conftest had imported torch).
# libgomp reads this once, when it loads, so it is set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
