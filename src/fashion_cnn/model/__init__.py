"""The model layer: Keras models built from the parameters' specs, compiled and trained with the
configured settings, and the notebook's activation-layer choices. Nodes and hooks both use it;
it imports no pipeline. Keras is imported inside the functions, so that the Kedro CLI stays fast
(``callbacks`` imports it at module level: import it only where Keras is needed)."""
