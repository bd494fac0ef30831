"""`kedro` as if some distributions were not installed: ``python kedro_without.py DIST... -- ARGS``.

benchmarks/compare.py uses it to time the README's main command (`pip install -e .`, no
extras) in an environment that also has the `tracking` and `airflow` extras: the hidden
distributions' entry points (CLI commands, hooks) are not loaded, so Kedro neither imports
nor runs them, exactly as when they are absent. Worker processes that ParallelRunner spawns import
this script again (as ``__mp_main__``): they hide the same distributions, read from the environment.
"""

import importlib.metadata
import os
import sys

if __name__ == "__main__":
    separator = sys.argv.index("--")
    os.environ["KEDRO_WITHOUT"] = ",".join(sys.argv[1:separator])
hidden = {name.lower().replace("_", "-") for name in os.environ.get("KEDRO_WITHOUT", "").split(",") if name}
_all_distributions = importlib.metadata.distributions


def _name(distribution) -> str:
    # The name from the .dist-info folder; reading every METADATA file instead took ~1 s per run.
    name = getattr(distribution, "_normalized_name", None) or distribution.metadata["Name"] or ""
    return name.lower().replace("_", "-")


def distributions(**kwargs):
    return (d for d in _all_distributions(**kwargs) if _name(d) not in hidden)


importlib.metadata.distributions = distributions  # entry_points() and pluggy both read through it

if __name__ == "__main__":
    sys.argv = ["kedro", *sys.argv[separator + 1:]]
    from kedro.framework.cli import main

    main()
