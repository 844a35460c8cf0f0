"""One module per dashboard panel; each takes plain data (records, stats, oracle, explain())."""
