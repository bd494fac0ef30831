"""The model layer, used by nodes and hooks alike and importing no pipeline: Keras models from the parameters and
what uses them. Keras is imported inside the functions, so that the Kedro CLI stays fast (``callbacks`` imports it
at module level: import it only where Keras is needed)."""
