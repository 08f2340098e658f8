"""Parts of ``python -m bench serving``: the shared model, the targets, /proc accounting, the table."""
