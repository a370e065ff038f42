"""ANN -> SNN conversion passes: load, clean up, analyse, calibrate, rewrite, validate."""
