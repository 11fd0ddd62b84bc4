"""`make bench`: training time and quality, streaming and API throughput, in one report."""
