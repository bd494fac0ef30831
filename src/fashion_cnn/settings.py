"""Project settings; see https://docs.kedro.org/en/stable/configure/configuration_basics/"""

import os
import warnings

from kedro.config import OmegaConfigLoader

from fashion_cnn.runtime import quiet
from fashion_cnn.runtime.checks import ValidateVariantsHook
from fashion_cnn.runtime.run_guard import RunGuardHook
from fashion_cnn.runtime.score_table import ScoreTableHook
from fashion_cnn.runtime.session_store import RunVersionStore
from fashion_cnn.runtime.tensorflow_runtime import TensorFlowRuntimeHook
from fashion_cnn.runtime.timing import RunTimingsHook
from fashion_cnn.runtime.tracking import MlflowVariantRunsHook

# Kedro 1.7 calls an OmegaConf 2.4 API that warns on every command; nothing for users to act on.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)

# ParallelRunner workers must not be forked from a process that has TensorFlow loaded (the
# spec check imports it before the run); spawned workers start clean.
os.environ.setdefault("KEDRO_MP_CONTEXT", "spawn")

# MlflowVariantRunsHook does nothing unless the `tracking` extra (kedro-mlflow) is installed.
# pluggy calls the last registered first: RunTimingsHook times the spec check, and the spec check
# runs before RunGuardHook claims the run's version. RunTimingsHook and ScoreTableHook both end a run
# (trylast): pluggy calls the last registered of those last, so the score table is the run's last line.
HOOKS = (TensorFlowRuntimeHook(), RunGuardHook(), ValidateVariantsHook(), MlflowVariantRunsHook(), RunTimingsHook(),
         ScoreTableHook())

# Every Kedro command imports this module, `kedro viz run` too (which loads the catalog, and so
# TensorFlow, without project hooks): the CUDA-probe filter goes in here, once.
quiet.install()

# Each session reserves a save version no other run holds (two runs can start in one millisecond).
SESSION_STORE_CLASS = RunVersionStore

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment such as `fast` overrides single keys (`training_defaults.batch_size`)
    # instead of replacing whole top-level blocks; so does conf/local/mlflow.yml (`server:` only).
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
}
