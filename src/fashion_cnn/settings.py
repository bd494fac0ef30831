"""Project settings; see https://docs.kedro.org/en/stable/configure/configuration_basics/

Declarations only: importing this module changes nothing in the process.
"""

from fashion_cnn.runtime.lifecycle import RunLifecycle
from fashion_cnn.runtime.runs import RunVersionStore
from fashion_cnn.runtime.tracking import MlflowVariantRunsHook

# What the project adds to a run, in order: runtime/lifecycle.py. The MLflow runs per variant go
# around kedro-mlflow's run and do nothing without the `tracking` extra. Each hook states its own
# place relative to the plugins' hooks (tryfirst/trylast), so their order here does not matter.
HOOKS = (RunLifecycle(), MlflowVariantRunsHook())

# Each session reserves a save version no other run holds (two runs can start in one millisecond).
SESSION_STORE_CLASS = RunVersionStore

CONFIG_LOADER_ARGS = {  # for Kedro's default CONFIG_LOADER_CLASS, OmegaConfigLoader
    "base_env": "base",
    "default_run_env": "local",
    # An environment such as `fast` overrides single keys (`training_defaults.batch_size`)
    # instead of replacing whole top-level blocks; so does conf/local/mlflow.yml (`server:` only).
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
}
