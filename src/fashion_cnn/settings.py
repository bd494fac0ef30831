"""Project settings; see https://docs.kedro.org/en/stable/configure/configuration_basics/"""

import warnings

from kedro.config import OmegaConfigLoader

from fashion_cnn.hooks import QuietTensorFlowHook, ValidateVariantsHook

# Kedro 1.7 calls an OmegaConf 2.4 API that warns on every command; nothing for users to act on.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)

HOOKS = (QuietTensorFlowHook(), ValidateVariantsHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment such as `fast` overrides single keys (`training_defaults.batch_size`)
    # instead of replacing whole top-level blocks.
    "merge_strategy": {"parameters": "soft"},
}
