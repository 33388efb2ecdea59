"""Dataset poisoning checks: readers, a runner, and one module per signal.

Importing this package imports nothing else (the engine loads ``scanners.dataset.runner`` only
when a dataset file turns up). ``common`` holds the row types, the mergeable ``DatasetCheck``
protocol and the helpers the checks share; checks never import each other.
"""
