"""One thin module per DVC stage: parse flags → load params → call the library → write outputs."""
