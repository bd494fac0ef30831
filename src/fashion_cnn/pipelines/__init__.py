"""The project's pipelines, one folder each; see ``pipeline_registry.py`` for how they combine."""

from typing import Any

# pandas and matplotlib load inside the nodes, so that `kedro registry list` and other CLI calls that import the
# pipelines do not pay for them; these aliases keep node signatures readable and resolvable (Kedro evaluates them).
DataFrame = Any  # pandas.DataFrame
Figure = Any  # matplotlib.figure.Figure
