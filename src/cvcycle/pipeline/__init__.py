"""The loop as a whole: simulated operators and the end-to-end demo that runs every stage."""
