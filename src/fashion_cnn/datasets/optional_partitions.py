"""A partitioned dataset that may have no partitions yet (the models' novelty references)."""

from __future__ import annotations

from typing import Any

from kedro_datasets.partitions import PartitionedDataset


class OptionalPartitionedDataset(PartitionedDataset):
    """``partitions.PartitionedDataset`` that loads as no partitions, where kedro-datasets' own fails."""

    def load(self) -> dict[str, Any]:
        return super().load() if self.exists() else {}
