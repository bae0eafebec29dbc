"""What a sync writes: the three files and the manifest (`sync`), the writer that puts them
to a destination in order, and the per-destination lanes that keep one destination's
failure from holding up the others."""
