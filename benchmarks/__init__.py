"""cohort-sync's benchmark: not part of the installed package (run `make bench`)."""
