"""Operating the worker: the status page's model, consumer lag, progress lines and the
watch that tells when something should be moving and is not."""
