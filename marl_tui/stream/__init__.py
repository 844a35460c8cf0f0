"""The run stream: typed frames and messages between a run and its views."""
