"""`make bench`: performance figures, printed (not asserted). Each section runs in its own
subprocess so peak memory is its own."""
