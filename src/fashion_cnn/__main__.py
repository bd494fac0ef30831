"""`fashion-cnn` and `python -m fashion_cnn`: the project's `kedro run`."""
import sys
from typing import Any

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project


def main(*args, **kwargs) -> Any:
    configure_project("fashion_cnn")
    kwargs["standalone_mode"] = not hasattr(sys, "ps1")  # an interactive session gets the result, no exit
    return find_run_command("fashion_cnn")(*args, **kwargs)


if __name__ == "__main__":
    main()
