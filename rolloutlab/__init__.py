"""rolloutlab: judge and steer progressive delivery from a notebook."""
