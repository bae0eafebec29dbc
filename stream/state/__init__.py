"""A partition's state and how it is kept in the membership table: the journal's bundles,
their encoding, packed members and what a restart reads back."""
