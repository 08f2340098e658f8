"""Programs that reproduce published results with calibserve (not tests)."""
