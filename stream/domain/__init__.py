"""The domain: events, sync times, membership, file names, retention and the partitioner.

Pure Python: nothing here imports a framework or any other layer of the package."""
